package store

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// A filter build reads the whole index (18 s at 10M on a cold cache). Held in one read
// transaction, it made a commit that grows the file wait in bbolt's remap until the build
// ended, and every new read wait behind that commit. The build is paused after its first
// chunk; a write growing the file well past the mapping must still commit, and every locator
// must be found once the build completes.
func TestLocatorFilterBuildDoesNotHoldWritesBack(t *testing.T) {
	chunk, pause := filterBuildChunk, filterBuildPause
	t.Cleanup(func() { filterBuildChunk, filterBuildPause = chunk, pause }) // after Close: the build has stopped
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true})
	t.Cleanup(func() { _ = s.Close() })
	waitFilter(t, s)
	const n = 3000
	users := map[teos.UserID]UserInfo{testUser(1): {AvailableSlots: 1 << 20, SubscriptionExpiry: 1 << 20}}
	appts := make([]*Appointment, n)
	for i := range appts {
		appts[i] = testAppointment(testUser(1), testLocator(i), 10)
	}
	if err := s.BulkLoad(users, appts); err != nil {
		t.Fatal(err)
	}

	paused, release := make(chan struct{}), make(chan struct{})
	first := true
	filterBuildChunk = n / 3
	filterBuildPause = func() {
		if first {
			first = false
			close(paused)
			<-release
		}
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	builds := s.LocatorFilterStats().Builds
	s.filters.startBuild()
	<-paused

	wrote := make(chan error, 1)
	go func() {
		wrote <- s.ExtUpdate("chunktest", func(b *bolt.Bucket) error {
			return b.Put([]byte("big"), bytes.Repeat([]byte{1}, 64<<20)) // past the mapping: a remap
		})
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // a deadlock check, not a speed limit
		t.Fatal("a write growing the file waited for the paused filter build (its read transaction)")
	}
	close(release)
	released = true
	for s.LocatorFilterStats().Builds == builds {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range n {
		if loc := testLocator(i); !s.filters.mayContain(&loc) {
			t.Fatalf("locator %d missing from the rebuilt filter", i)
		}
	}
}
