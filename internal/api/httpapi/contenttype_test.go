package httpapi

import (
	"mime"
	"net/http"
	"net/http/httptest"
	"testing"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
)

// TestIsJSONFastPath: the shortcut for the plain media type answers as the parser does.
func TestIsJSONFastPath(t *testing.T) {
	for _, ct := range []string{"application/json", "Application/JSON", "APPLICATION/JSON", "application/json ",
		" application/json", "application/json;", "application/json; charset=utf-8", "application/jsonx",
		"application/jso", "text/json", "", "application/json; charset", "application/json\x00"} {
		mediaType, _, err := mime.ParseMediaType(ct)
		if want := err == nil && mediaType == "application/json"; isJSON(ct) != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, !want, want)
		}
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
