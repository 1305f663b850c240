package lndtower

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/metrics"
)

// hungCounter's first Counts does not answer until release is closed, as a database cut off
// answers only at the store's 30 s operation timeout.
type hungCounter struct {
	release chan struct{}
	calls   atomic.Int32
}

func (h *hungCounter) Counts() (int, int, error) {
	if h.calls.Add(1) == 1 {
		<-h.release
	}
	return 4, 9, nil
}

// A store that does not answer the counts fails only teos_lnd_sessions and
// teos_lnd_state_updates, not the scrape: Prometheus gives a scrape 10 s by default and a failed
// one loses every metric of the tower. A count still in flight is not started again.
func TestHungCountsFailOnlyTheirGauges(t *testing.T) {
	db := &hungCounter{release: make(chan struct{})}
	justice := new(atomic.Uint64)
	justice.Store(2)
	srv := &Server{}
	m := metrics.New(metrics.Config{Height: func() uint32 { return 7 }})
	if err := m.Register(append(collectors(db, justice, 50*time.Millisecond), srv.Collectors()...)...); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(m.Handler())
	defer hs.Close()
	released := false
	defer func() { // before hs.Close, which waits for a scrape held by the counts
		if !released {
			close(db.release)
		}
	}()
	scrape := func() string {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			resp, err := http.Get(hs.URL + "/metrics")
			if err != nil {
				got <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			got <- fmt.Sprintf("%d\n%s%v", resp.StatusCode, b, err)
		}()
		select {
		case body := <-got:
			return body
		case <-time.After(time.Minute): // a hang, not a slow scrape
			t.Fatal("the scrape waits for the store's counts")
			return ""
		}
	}
	for range 2 {
		body := scrape()
		for _, want := range []string{"\nteos_chain_height 7\n", "\nteos_lnd_justice_txs_total 2\n", "\nteos_lnd_sessions_accepted_total 0\n"} {
			if !strings.HasPrefix(body, "200\n") || !strings.Contains(body, want) {
				t.Fatalf("scrape while the counts hang lacks %q:\n%s", strings.TrimSpace(want), body)
			}
		}
		if strings.Contains(body, "teos_lnd_sessions ") || strings.Contains(body, "teos_lnd_state_updates ") {
			t.Fatalf("scrape shows counts the store never gave:\n%s", body)
		}
	}
	if n := db.calls.Load(); n != 1 {
		t.Fatalf("Counts called %d times while the first call hung, want 1", n)
	}
	close(db.release)
	released = true
	for {
		body := scrape()
		if strings.Contains(body, "\nteos_lnd_sessions 4\n") && strings.Contains(body, "\nteos_lnd_state_updates 9\n") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}
