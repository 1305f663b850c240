package store

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestCountsAfterBatchRetry: a batch in which one call fails after writing is rolled back and
// every call retried alone; the adds of the retried calls (new, update, same UUID twice) are
// counted once.
func TestCountsAfterBatchRetry(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	defer s.Close()
	registerAll(t, s, 2, 100, 1000)
	mustUpsert(t, s, testAppointment(testUser(0), testLocator(1), 100)) // stored: an update below
	upsert := func(a *Appointment) *writeCall {
		rec := encodeAppointment(a)
		return &writeCall{fn: func(b *buckets) error {
			_, err := upsertAppointment(b, a, rec, acceptUnlessTriggered(false), nil)
			return err
		}, done: make(chan struct{})}
	}
	boom := errors.New("boom")
	failing := &writeCall{fn: func(b *buckets) error {
		if err := putAppointmentRecord(b, testAppointment(testUser(1), testLocator(9), 10).UUID(), []byte("x")); err != nil {
			return err
		}
		return boom
	}, done: make(chan struct{})}
	calls := []*writeCall{
		upsert(testAppointment(testUser(0), testLocator(2), 100)), // new
		upsert(testAppointment(testUser(0), testLocator(1), 200)), // update
		failing,
		upsert(testAppointment(testUser(1), testLocator(2), 100)), // new
		upsert(testAppointment(testUser(1), testLocator(2), 300)), // same UUID again: update
	}
	s.writes.commit(calls)
	for i, c := range calls {
		if (c.err != nil) != (c == failing) {
			t.Fatalf("call %d: %v", i, c.err)
		}
	}
	wantCountsMatchRecount(t, s, "after retry")
	wantCounts(t, s, 2, 3, 0)
}
