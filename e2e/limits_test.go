package e2e

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
)

// TestAPIRateLimit runs teosd with the opt-in rate limit: past the burst, a client's
// requests to one endpoint get 429 with a JSON error, while its other endpoints keep their
// own allowance.
func TestAPIRateLimit(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "api_rate_limit = 0.2\napi_rate_burst = 2\n")
	tw.start()
	alice := newUser(t)
	for i := range 2 {
		if code, raw := post(t, tw.apiURL, "/register", alice.registerRequest(), nil); code != http.StatusOK {
			t.Fatalf("register %d within the burst: %d %s", i, code, raw)
		}
	}
	code, raw := post(t, tw.apiURL, "/register", alice.registerRequest(), nil)
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"error_code"`
	}
	if code != http.StatusTooManyRequests || json.Unmarshal(raw, &e) != nil ||
		e.Error != "Too many requests" || e.Code != teos.ErrCodeTooManyRequests {
		t.Fatalf("register past the burst: %d %s, want 429 Too many requests / %d", code, raw, teos.ErrCodeTooManyRequests)
	}
	if code, _, raw := alice.subscription(t, tw); code != http.StatusOK {
		t.Fatalf("get_subscription_info, another endpoint: %d %s", code, raw)
	}
	tw.stop()
}
