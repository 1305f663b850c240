package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/teos-go/teos/internal/api/httpapi"
)

// FuzzCompressedBody posts arbitrary bytes as a zstd or gzip /add_appointments body. Whatever
// they are, the answer is 200 (the tower asked once), 413, or 400 with a request-format code,
// and a refused body never reaches the tower.
func FuzzCompressedBody(f *testing.F) {
	valid := []byte(`{"appointments":[{"appointment":{"locator":"` + locator + `","encrypted_blob":"00","to_self_delay":1},"signature":"` + sig + `"}]}`)
	enc, _ := zstd.NewWriter(nil)
	f.Add(true, enc.EncodeAll(valid, nil))
	f.Add(true, enc.EncodeAll(make([]byte, 3<<20), nil))
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write(valid)
	_ = w.Close()
	f.Add(false, gz.Bytes())
	f.Add(false, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, isZstd bool, body []byte) {
		encoding := "gzip"
		if isZstd {
			encoding = "zstd"
		}
		ext := newExtFake()
		req := httptest.NewRequest(http.MethodPost, "/add_appointments", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", encoding)
		req.Header.Set("Content-Length", strconv.Itoa(len(body)))
		rec := httptest.NewRecorder()
		httpapi.NewWithExtensions(newFake(), ext, nil).ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			return
		case http.StatusRequestEntityTooLarge:
		case http.StatusBadRequest:
			var e struct {
				Error *string `json:"error"`
				Code  *int    `json:"error_code"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == nil || e.Code == nil || *e.Code < 1 || *e.Code > 6 {
				t.Fatalf("%s %x: 400 with body %q", encoding, body, rec.Body)
			}
		default:
			t.Fatalf("%s %x: unexpected status %d %q", encoding, body, rec.Code, rec.Body)
		}
		if len(ext.calls) != 0 {
			t.Fatalf("%s %x: refused with %d but reached the tower", encoding, body, rec.Code)
		}
	})
}
