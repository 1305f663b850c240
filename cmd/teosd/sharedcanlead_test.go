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

// An instance that could not lead sits out benchedPeriods periods of the monotonic clock: the
// bench was a deadline in Unix time, which a step of the system clock (NTP) moves, so a step
// back kept the instance out of the election for as long as the step, and one forward let it
// back at once. The test steps a fake monotonic clock while the wall clock barely moves.
func TestBenchIsMeasuredOnTheMonotonicClock(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := pg.NewDatabase(t)
	cfg := config.Default()
	cfg.PollingInterval = time.Hour // the bench: 10 h, which the wall clock will not reach here
	log := slog.New(slog.DiscardHandler)
	var mono atomic.Int64
	mono.Store(int64(time.Hour))
	rc := &roles{cfg: &cfg, log: log, sinceStart: func() time.Duration { return time.Duration(mono.Load()) }}
	var terms atomic.Int64
	newTerm := func(context.Context, *pgx.Conn) (int64, error) { return terms.Add(1), nil }
	rc.el = leader.New(leader.Config{URL: url, Every: 50 * time.Millisecond, Logger: log, NewTerm: newTerm})
	canLead := rc.canLead(func(context.Context) bool { return true })

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = rc.el.Run(ctx) })
	deadline := time.Now().Add(30 * time.Second)
	for l, _ := rc.el.Leading(); !l || rc.el.Term() != 1; l, _ = rc.el.Leading() {
		if time.Now().After(deadline) {
			t.Fatal("term 1 never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc.leadFailedTerm.Store(1) // as roles.Run records a failed start of term 1
	if canLead(ctx) {
		t.Fatal("the leader whose term's start failed says it can lead")
	}
	cancel() // the elector lets the lock go: a follower now
	wg.Wait()
	if l, _ := rc.el.Leading(); l {
		t.Fatal("still leading after the elector stopped")
	}
	bench := benchedPeriods * cfg.PollEvery()
	mono.Add(int64(bench - time.Nanosecond))
	if canLead(context.Background()) {
		t.Fatal("the benched instance campaigns before its bench is over")
	}
	mono.Add(int64(time.Nanosecond))
	if !canLead(context.Background()) {
		t.Fatalf("the instance is still benched %s later on the monotonic clock", bench)
	}
}
