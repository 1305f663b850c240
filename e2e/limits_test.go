package e2e

import (
	"net/http"
	"testing"
)

// TestAPIRateLimit runs teosd with the opt-in rate limit: past the burst, a client's
// requests to one endpoint wait their turn and are then served (a refusal would make the
// CLN plugin drop an appointment for good), while its other endpoints keep their own
// allowance.
func TestAPIRateLimit(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "api_rate_limit = 1.0\napi_rate_burst = 2\n")
	tw.start()
	alice := newUser(t)
	for i := range 4 { // the last two wait about a second each
		if code, raw := post(t, tw.apiURL, "/register", alice.registerRequest(), nil); code != http.StatusOK {
			t.Fatalf("register %d: %d %s", i, code, raw)
		}
	}
	if code, _, raw := alice.subscription(t, tw); code != http.StatusOK {
		t.Fatalf("get_subscription_info, another endpoint: %d %s", code, raw)
	}
	tw.stop()
}
