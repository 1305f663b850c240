package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/leader"
	"github.com/teos-go/teos/internal/pgtest"
)

// A leadership term whose start failed made the instance say it cannot lead (blocksFailing)
// until a later start succeeded, whatever the term: after it gave that term up and won the
// lock again, the new term's start, still loading recent blocks, was taken for the old
// failure, so a start longer than three periods was given up and benched at every try. Only
// the current term's failed start counts.
func TestFailedStartCountsOnlyInItsTerm(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := pg.NewDatabase(t)
	cfg := config.Default()
	cfg.PollingInterval = 50 * time.Millisecond
	log := slog.New(slog.DiscardHandler)
	rc := &roles{cfg: &cfg, log: log}
	var terms atomic.Int64
	newTerm := func(context.Context, *pgx.Conn) (int64, error) { return terms.Add(1), nil }
	rc.el = leader.New(leader.Config{URL: url, Every: cfg.PollEvery(), Logger: log, NewTerm: newTerm})
	canLead := rc.canLead(func(context.Context) bool { return true })

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = rc.el.Run(ctx) })
	waitTerm := func(term int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if l, _ := rc.el.Leading(); l && rc.el.Term() == term {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("term %d never started (now %d)", term, rc.el.Term())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitTerm(1)
	rc.leadFailedTerm.Store(1) // as roles.Run records a failed start of term 1
	if canLead(ctx) {
		t.Fatal("the leader whose term's start failed says it can lead")
	}
	rc.benchedUntil.Store(0)

	rc.el.StepDown(1) // as a refused write of term 1 does; the lock is free, and won again
	waitTerm(2)
	if !canLead(ctx) {
		t.Fatal("term 2's leader, its start still running, says it cannot lead for term 1's failed start")
	}
}
