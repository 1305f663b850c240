package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A store that does not answer the counts (a database cut off answers only at its 30 s
// operation timeout) fails only the three count gauges, not the whole scrape: Prometheus gives
// a scrape 10 s by default, and a failed one loses every metric, the reachability gauges
// included, just when the operator needs them. A count still in flight is not started again.
func TestHungCountsFailOnlyTheirGauges(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	m := New(Config{
		Counts: func() (int, int, int, error) {
			if calls.Add(1) == 1 {
				<-release // the database does not answer
			}
			return 3, 5, 2, nil
		},
		CountsWait: 50 * time.Millisecond,
		Height:     func() uint32 { return 7 },
	})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	scrape := func() string {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			resp, err := http.Get(srv.URL + "/metrics")
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
		if !strings.HasPrefix(body, "200\n") || !strings.Contains(body, "\nteos_chain_height 7\n") {
			t.Fatalf("scrape while the counts hang lacks teos_chain_height:\n%s", body)
		}
		if strings.Contains(body, "teos_registered_users") {
			t.Fatalf("scrape shows counts the store never gave:\n%s", body)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Counts called %d times while the first call hung, want 1", n)
	}
	close(release)
	for {
		body := scrape()
		if strings.Contains(body, "\nteos_registered_users 3\n") && strings.Contains(body, "\nteos_watcher_appointments 5\n") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}
