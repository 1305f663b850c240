package httpapi

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestIsJSONFastPathUnicodeFold: strings.EqualFold folds U+017F (ſ, LATIN SMALL LETTER LONG S)
// to 's' and U+212A (KELVIN SIGN) to 'k', so the fast path must not use it; and
// mime.ParseMediaType lowercases U+0130 (İ) to 'i'. rust-teos's warp needs a visible-ASCII
// header: 415 for all of them.
func TestIsJSONFastPathUnicodeFold(t *testing.T) {
	for _, ct := range []string{"application/j\u017fon", "appl\u0130cation/json", "application/json\u212a"} {
		if isJSON(ct) || warpJSON(ct) {
			t.Errorf("isJSON(%q) = %v, warpJSON %v, want false", ct, isJSON(ct), warpJSON(ct))
		}
	}
}

// TestUnicodeFoldedContentTypeOverTheWire: over a real connection, a body sent with
// "Content-Type: application/j\xc5\xbfon" (ſ in UTF-8, which net/http passes through as
// obs-text) must get 415 as before the fast path, not be decoded.
func TestUnicodeFoldedContentTypeOverTheWire(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Config{}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := "{}"
	fmt.Fprintf(c, "POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/j\u017fon\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("status %d, want 415", resp.StatusCode)
	}
}
