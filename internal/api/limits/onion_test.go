package limits

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/api/httpapi"
)

// Onion clients are not rate limited by address: they have none, and one shared key would
// let one of them starve the others. 127.0.0.1, where tor connects from, keeps its budget.
func TestRateLetsOnionClientsThrough(t *testing.T) {
	l := NewRate(RateConfig{Rate: 0.001, Burst: 1, MaxDelay: time.Second})
	ctx := t.Context()
	onion := httpapi.Admission{Client: clientaddr.Client{Onion: true}, Endpoint: "register", Size: 100}
	for i := range 5 {
		if d, err := l.Admit(ctx, onion); err != nil || d != 0 {
			t.Fatalf("onion request %d: waited %v, %v", i, d, err)
		}
	}
	local := admission(netip.MustParseAddr("127.0.0.1"), "register")
	if d, err := l.Admit(ctx, local); err != nil || d != 0 {
		t.Fatalf("127.0.0.1's first request (the onion ones must not have spent its budget): waited %v, %v", d, err)
	}
	if _, err := l.Admit(ctx, local); !errors.Is(err, ErrDelayTooLong) {
		t.Fatalf("127.0.0.1's second request: %v, want ErrDelayTooLong (still limited)", err)
	}
}
