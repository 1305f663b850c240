package httpapi

import (
	"bufio"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
)

// TestIsJSONFastPath: the shortcut for the plain media type answers as the parser does.
func TestIsJSONFastPath(t *testing.T) {
	for _, ct := range []string{"application/json", "Application/JSON", "APPLICATION/JSON", "application/json ",
		" application/json", "application/json;", "application/json; charset=utf-8", "application/jsonx",
		"application/jso", "text/json", "", "application/json; charset", "application/json\x00"} {
		if want := warpJSON(ct); isJSON(ct) != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, !want, want)
		}
	}
}

// TestContentTypeCorpus replays testdata/warp_content_type.txt: Content-Type values (hex) and
// whether rust-teos's warp takes each as JSON (1) or answers 415 (0), as testdata/mime-oracle
// (the mime crate's own parser) says. To regenerate or extend it, build the oracle and feed it
// hex lines. mime.ParseMediaType, used before, differed on 35 of these 1,248 values.
func TestContentTypeCorpus(t *testing.T) {
	f, err := os.Open("testdata/warp_content_type.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		h, want, ok := strings.Cut(sc.Text(), " ")
		ct, err := hex.DecodeString(h)
		if !ok || err != nil || (want != "0" && want != "1") {
			t.Fatalf("line %d: %q", n+1, sc.Text())
		}
		if got := isJSON(string(ct)); got != (want == "1") {
			t.Errorf("isJSON(%q) = %v, warp: %s", ct, got, want)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 1000 {
		t.Fatalf("corpus has %d values, want at least 1000", n)
	}
}

// TestSharedContentTypeStaysIntact: the JSON replies share one header value; a writer that
// appends to its reply's value must not change the next reply's.
func TestSharedContentTypeStaysIntact(t *testing.T) {
	h := NewHandler(Config{}).(*handler)
	w := httptest.NewRecorder()
	h.writeReceipt(w, &commonv2.AddAppointmentResponse{Signature: "x"})
	w.Header().Add("Content-Type", "text/plain")
	w2 := httptest.NewRecorder()
	h.writeJSON(w2, http.StatusOK, ErrorBody{Message: "m", Code: 1})
	if got := w2.Header().Values("Content-Type"); len(got) != 1 || got[0] != "application/json" {
		t.Fatalf("Content-Type %q", got)
	}
	if len(jsonContentType) != 1 || cap(jsonContentType) != 1 || jsonContentType[0] != "application/json" {
		t.Fatalf("shared value changed: %q (cap %d)", jsonContentType, cap(jsonContentType))
	}
}

// FuzzIsJSON: any Content-Type value gets an answer (no panic), the fast path agrees with the
// parser, and the answer of an ASCII value does not depend on letter case (the crate parses
// type, subtype and parameters case-blind).
func FuzzIsJSON(f *testing.F) {
	for _, s := range []string{"application/json", "application/json; charset=utf-8", "application/json+x",
		`application/json; a="b;c"`, `application/json; a=""`, "application/json; a=", "application/json ;a=b",
		"*/*", "text/plain;;", "application/json;a=b; a=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		got := isJSON(ct)
		if got != warpJSON(ct) {
			t.Fatalf("isJSON(%q) = %v, the parser says %v", ct, got, !got)
		}
		ascii := true
		for i := 0; i < len(ct); i++ {
			ascii = ascii && ct[i] < 0x80
		}
		if up := strings.ToUpper(ct); ascii && isJSON(up) != got {
			t.Fatalf("isJSON(%q) = %v but isJSON(%q) = %v", ct, got, up, !got)
		}
	})
}
