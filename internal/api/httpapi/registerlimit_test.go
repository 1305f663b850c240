package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/httpapi"
)

// registerBody is a register request the HTTP checks let through.
const registerBody = `{"user_id":"020dea894c967319407265764aba31bdef75d463f96800f34dd6df61380d82dfc0"}`

func TestRegistrationLimit(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tower := newFake()
	var observed []httpapi.Exchange
	h := httpapi.NewHandler(httpapi.Config{
		Client:        tower,
		Registrations: httpapi.NewRegistrationLimit(2, func() time.Time { return now }),
		Observer:      httpapi.ObserverFunc(func(e httpapi.Exchange) { observed = append(observed, e) }),
	})
	send := func(addr, path, body string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Length", strconv.Itoa(len(body)))
		req.RemoteAddr = addr + ":4242"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	refused := `{"error":"` + httpapi.MsgRegistrationRate + `","error_code":65}`
	for i := range 2 {
		if code, body := send("10.0.0.1", "/register", registerBody); code != http.StatusOK {
			t.Fatalf("registration %d: %d %s", i, code, body)
		}
	}
	calls := len(tower.Calls())
	if code, body := send("10.0.0.1", "/register", registerBody); code != http.StatusBadRequest || body != refused {
		t.Fatalf("third registration in a minute: %d %s, want 400 %s", code, body, refused)
	}
	if len(tower.Calls()) != calls {
		t.Fatal("a refused registration reached the tower")
	}
	if last := observed[len(observed)-1]; last.Endpoint != "register" || last.Status != http.StatusBadRequest || last.ErrorCode != 65 {
		t.Fatalf("the refusal was observed as %+v", last)
	}
	if code, _ := send("10.0.0.1", "/get_subscription_info", `{"signature":"x"}`); code != http.StatusOK {
		t.Fatal("other endpoints are not limited")
	}
	if code, _ := send("10.0.0.2", "/register", registerBody); code != http.StatusOK {
		t.Fatal("another address has its own allowance")
	}
	// Failed registrations grant nothing, so they cost nothing.
	tower.err = status.Error(codes.ResourceExhausted, "Subscription maximum slots count reached")
	for range 5 {
		if code, _ := send("10.0.0.3", "/register", registerBody); code != http.StatusBadRequest {
			t.Fatal("the failure should pass through")
		}
	}
	tower.err = nil
	if code, _ := send("10.0.0.3", "/register", registerBody); code != http.StatusOK {
		t.Fatal("failed registrations used up the allowance")
	}
	now = now.Add(30 * time.Second) // one more token
	if code, _ := send("10.0.0.1", "/register", registerBody); code != http.StatusOK {
		t.Fatal("the allowance did not refill")
	}
	if code, _ := send("10.0.0.1", "/register", registerBody); code != http.StatusBadRequest {
		t.Fatal("refilled more than the rate")
	}
}
