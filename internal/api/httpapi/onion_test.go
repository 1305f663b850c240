package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/api/httpapi"
)

// Onion clients share one registration budget, their own: 127.0.0.1 (where tor connects
// from, and where local clients are) keeps its budget, and the onion's is still bounded.
func TestRegistrationLimitOnionBudget(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := httpapi.NewHandler(httpapi.Config{
		Client:        newFake(),
		Registrations: httpapi.NewRegistrationLimit(1, func() time.Time { return now }),
	})
	send := func(onion bool) int {
		req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(registerBody))
		req.Header.Set("Content-Length", strconv.Itoa(len(registerBody)))
		req.RemoteAddr = "127.0.0.1:4242"
		if onion {
			req = req.WithContext(clientaddr.WithOnion(req.Context(), nil))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := send(true); code != http.StatusOK {
		t.Fatalf("first onion registration: %d", code)
	}
	if code := send(true); code != http.StatusBadRequest {
		t.Fatalf("second onion registration in the minute: %d, want 400", code)
	}
	if code := send(false); code != http.StatusOK {
		t.Fatalf("127.0.0.1 after the onion used its budget: %d, want its own budget", code)
	}
	if code := send(false); code != http.StatusBadRequest {
		t.Fatalf("127.0.0.1's second registration: %d, want 400", code)
	}
}
