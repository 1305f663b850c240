package store

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A block-path write (update) queued behind many adds is committed right after the commit in
// progress, before the queued adds.
func TestUpdateGoesBeforeQueuedBatches(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true, MaxBatchSize: 4})
	t.Cleanup(func() { _ = s.Close() })
	var mu sync.Mutex
	var order []string
	note := func(what string) {
		mu.Lock()
		order = append(order, what)
		mu.Unlock()
	}
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = s.batch(func(*buckets) error {
			select {
			case <-started:
			default:
				close(started)
			}
			<-release // hold the writer
			note("first")
			return nil
		})
	})
	<-started
	const adds = 20
	for range adds {
		wg.Go(func() { _ = s.batch(func(*buckets) error { note("add"); return nil }) })
	}
	// Let the adds reach the queue (best effort; the assertion holds as long as one did).
	deadline := time.Now().Add(5 * time.Second)
	for len(s.writes.queue) < cap(s.writes.queue) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	queued := len(s.writes.queue)
	wg.Go(func() {
		if err := s.update(func(*buckets) error { note("block"); return nil }); err != nil {
			t.Error(err)
		}
	})
	// The block write must be queued before the writer is released, or the adds may go first:
	// a deadline of its own (the adds' one may be spent), and no release without it.
	for urgentBy := time.Now().Add(time.Minute); len(s.writes.urgent) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(urgentBy) {
			close(release)
			wg.Wait()
			t.Fatal("the block write never reached the urgent queue")
		}
	}
	close(release)
	wg.Wait()
	if queued == 0 {
		t.Skip("no add reached the queue in time")
	}
	if len(order) < 2 || order[0] != "first" || order[1] != "block" {
		t.Fatalf("commit order %v: want the block write right after the one in progress", order[:min(len(order), 4)])
	}
}

func TestUpdateErrorAndClose(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	boom := errors.New("boom")
	if err := s.update(func(b *buckets) error { _ = b.meta.Put([]byte("x"), []byte("y")); return boom }); !errors.Is(err, boom) {
		t.Fatalf("update error = %v", err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bktMeta).Get([]byte("x")) != nil {
			t.Error("failed update left its write")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastBlock([32]byte{}, 1); !errors.Is(err, bolt.ErrDatabaseNotOpen) {
		t.Fatalf("update after Close: %v", err)
	}
}
