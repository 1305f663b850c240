package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/api/httpapi"
)

func TestLimitRegistrations(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	fail := false
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "{}")
	})
	h := httpapi.LimitRegistrations(next, 2, func() time.Time { return now }, nil)
	send := func(addr, path string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader("{}"))
		req.RemoteAddr = addr + ":4242"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	refused := `{"error":"` + httpapi.MsgRegistrationRate + `","error_code":65}`
	for i := range 2 {
		if code, body := send("10.0.0.1", "/register"); code != http.StatusOK {
			t.Fatalf("registration %d: %d %s", i, code, body)
		}
	}
	if code, body := send("10.0.0.1", "/register"); code != http.StatusBadRequest || body != refused {
		t.Fatalf("third registration in a minute: %d %s, want 400 %s", code, body, refused)
	}
	if code, _ := send("10.0.0.1", "/add_appointment"); code != http.StatusOK {
		t.Fatal("other endpoints are not limited")
	}
	if code, _ := send("10.0.0.2", "/register"); code != http.StatusOK {
		t.Fatal("another address has its own allowance")
	}
	// Failed registrations grant nothing, so they cost nothing.
	fail = true
	for range 5 {
		if code, _ := send("10.0.0.3", "/register"); code != http.StatusBadRequest {
			t.Fatal("the failure should pass through")
		}
	}
	fail = false
	if code, _ := send("10.0.0.3", "/register"); code != http.StatusOK {
		t.Fatal("failed registrations used up the allowance")
	}
	now = now.Add(30 * time.Second) // one more token
	if code, _ := send("10.0.0.1", "/register"); code != http.StatusOK {
		t.Fatal("the allowance did not refill")
	}
	if code, _ := send("10.0.0.1", "/register"); code != http.StatusBadRequest {
		t.Fatal("refilled more than the rate")
	}
}
