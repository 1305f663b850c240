package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A call that fails after writing must roll back only itself: the batch is retried call by
// call, so the others still commit and the failed call leaves nothing behind.
func TestGroupCommitIsolatesAFailedWrite(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	t.Cleanup(func() { _ = s.Close() })
	boom := errors.New("boom")
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.batch(func(b *buckets) error {
				if err := b.meta.Put(fmt.Appendf(nil, "k%d", i), []byte{1}); err != nil {
					return err
				}
				if i == 7 {
					return boom // after writing: not a refusal
				}
				return nil
			})
		})
	}
	wg.Wait()
	err := s.db.View(func(tx *bolt.Tx) error {
		for i := range n {
			got := tx.Bucket(bktMeta).Get(fmt.Appendf(nil, "k%d", i))
			switch {
			case i == 7 && (!errors.Is(errs[i], boom) || got != nil):
				t.Errorf("failed write: err %v, value %v; want boom and nothing stored", errs[i], got)
			case i != 7 && (errs[i] != nil || got == nil):
				t.Errorf("write %d: err %v, value %v; want committed", i, errs[i], got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.UpdateUser(testUser(1), func(UserInfo, bool) (UserInfo, error) { return UserInfo{}, nil })
	if !errors.Is(err, bolt.ErrDatabaseNotOpen) {
		t.Fatalf("write after Close: %v, want ErrDatabaseNotOpen", err)
	}
}
