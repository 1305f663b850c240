package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/leader"
	"github.com/teos-go/teos/internal/pgtest"
)

// PostgreSQL stops under an instance sharing it while its bitcoind answers: the scrape says
// the database is unreachable and bitcoind reachable. teos_bitcoind_reachable read the
// database's reachability too, so an operator alerted on it went looking at a healthy bitcoind.
func TestSharedMetricsTellDatabaseFromBitcoind(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := pg.NewDatabase(t)
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"result":"`+strings.Repeat("00", 32)+`","error":null,"id":1}`)
	}))
	defer node.Close()
	btc, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(node.URL, "http://"), User: "u", Pass: "p", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer btc.Close()
	log := slog.New(slog.DiscardHandler)
	rc := &roles{log: log, btc: btc, gk: gatekeeper.New(gatekeeper.Config{}, 100)}
	rc.el = leader.New(leader.Config{URL: url, Every: 50 * time.Millisecond, CanLead: bitcoindAnswers(btc), Logger: log})
	held := grpcapi.Hold{Gate: hold.New(hold.Config{Bound: time.Second})}
	met := rc.newMetrics(func() (int, int, int, error) { return 0, 0, 0, nil }, held)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = rc.el.Run(ctx) })
	waitScrape := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			body, missing := scrape(t, met), ""
			for _, w := range want {
				if !strings.Contains(body, "\n"+w+"\n") {
					missing = w
					break
				}
			}
			if missing == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the scrape:\n%s", missing, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for l := false; !l; l, _ = rc.el.Leading() {
		time.Sleep(10 * time.Millisecond)
	}
	waitScrape("teos_bitcoind_reachable 1", "teos_database_reachable 1")

	pg.Stop()
	for rc.el.DatabaseReachable() {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := btc.BestBlockHash(ctx); err != nil { // bitcoind still answers
		t.Fatal(err)
	}
	waitScrape("teos_bitcoind_reachable 1", "teos_database_reachable 0")

	pg.Restart()
	waitScrape("teos_bitcoind_reachable 1", "teos_database_reachable 1")
}
