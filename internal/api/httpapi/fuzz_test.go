package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/teos-go/teos/internal/api/httpapi"
)

// FuzzEndpointBody posts arbitrary bytes to each public endpoint. Whatever the body, the
// handler answers: 200 after exactly one call to the tower, 413 for an oversized body, or 400
// with a JSON error whose code is a request-format one (1-6) and no call to the tower.
func FuzzEndpointBody(f *testing.F) {
	paths := endpoints()
	for i, p := range paths {
		f.Add(uint8(i), []byte(validBodies[p]))
		f.Add(uint8(i), []byte(""))
		f.Add(uint8(i), []byte(`{"user_id": 1, "signature": null, "appointment": []}`))
		f.Add(uint8(i), bytes.Repeat([]byte{'{'}, bodyLimits[p]+1))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		fake := newFake()
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Length", strconv.Itoa(len(body))) // as a real client sends it
		rec := httptest.NewRecorder()
		httpapi.New(fake, nil).ServeHTTP(rec, req)

		calls := len(fake.Calls())
		switch rec.Code {
		case http.StatusOK:
			if calls != 1 {
				t.Fatalf("%s %q: 200 after %d calls", path, body, calls)
			}
			return
		case http.StatusRequestEntityTooLarge:
			if len(body) <= bodyLimits[path] {
				t.Fatalf("%s: 413 for %d bytes (limit %d)", path, len(body), bodyLimits[path])
			}
		case http.StatusBadRequest:
			var e struct {
				Error *string `json:"error"`
				Code  *int    `json:"error_code"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == nil || e.Code == nil {
				t.Fatalf("%s %q: 400 with body %q", path, body, rec.Body)
			}
			if *e.Code < 1 || *e.Code > 6 || *e.Error == "" {
				t.Fatalf("%s %q: 400 with error %q code %d", path, body, *e.Error, *e.Code)
			}
		default:
			t.Fatalf("%s %q: unexpected status %d %q", path, body, rec.Code, rec.Body)
		}
		if calls != 0 {
			t.Fatalf("%s %q: rejected with %d but reached the tower", path, body, rec.Code)
		}
	})
}
