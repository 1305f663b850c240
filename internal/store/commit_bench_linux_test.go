package store

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkAddDurable measures the store's share of a durable add under the add load of
// teos-bench: 64 callers, each storing one appointment at a time the way
// watcher.AddAppointment does (UpsertAppointments with one item, 500-byte blob, 64 users),
// fsync on, on a real file. Besides ns/op it reports the process CPU per add (user+system,
// getrusage: the whole test process, so the callers' own small work is included), how many
// adds share a commit, and how many page writes (one pwrite each) a commit and an add cost.
// preload is how many appointments the file holds before the timed adds.
func BenchmarkAddDurable(b *testing.B) {
	for _, preload := range []int{0, 200_000} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("preload=%d/callers=%d", preload, callers), func(b *testing.B) {
				benchAdds(b, preload, callers, 1)
			})
		}
	}
}

// BenchmarkAddBatched is BenchmarkAddDurable with each call storing items appointments
// (UpsertAppointments with many items, as a coalesced add_appointments does): how the
// store's cost per add falls as commits grow beyond what 64 single-add callers make.
func BenchmarkAddBatched(b *testing.B) {
	for _, preload := range []int{0, 200_000} {
		for _, c := range []struct{ callers, items int }{{8, 8}, {4, 64}, {1, 4096}} {
			b.Run(fmt.Sprintf("preload=%d/callers=%d/items=%d", preload, c.callers, c.items), func(b *testing.B) {
				benchAdds(b, preload, c.callers, c.items)
			})
		}
	}
}

const (
	benchUsers = 64
	benchSig   = "rbn4pe7gu5s6ct8fmd5w6mj8q9yb8ch3dtuxo5ee7eqs5umkqr93hk9ga76pwnzodh3sqk4n8uqz6cxs6jrj4egq8jg6o"
)

var benchBlob = bytes.Repeat([]byte{0xb1}, 500) // teos-bench's default blob size

// benchAppointment is the i-th appointment of the add benchmarks and their fixtures.
func benchAppointment(i int) *Appointment {
	return &Appointment{
		Appointment:   teos.Appointment{Locator: testLocator(i), EncryptedBlob: benchBlob, ToSelfDelay: 42},
		UserID:        testUser(i % benchUsers),
		UserSignature: benchSig,
		StartBlock:    100,
	}
}

// BenchmarkAddAfterDeletes is BenchmarkAddDurable on the 200,000-appointment file after every
// fourth of its appointments was deleted (as when users expire or penalties confirm): the
// freed pages make a long freelist, which bbolt rewrites in full on every commit.
func BenchmarkAddAfterDeletes(b *testing.B) {
	const preload = 200_000
	s := benchStore(b, preload)
	ids := make([]teos.UUID, 0, 1000)
	for i := 0; i < preload; i += 4 {
		ids = append(ids, benchAppointment(i).UUID())
		if len(ids) == cap(ids) || i+4 >= preload {
			if err := s.DeleteAppointments(ids, false); err != nil {
				b.Fatal(err)
			}
			ids = ids[:0]
		}
	}
	timeAdds(b, s, preload, 64, 1)
}

// benchStore opens a store on a copy of the preload fixture (or a new file with the bench users).
func benchStore(b *testing.B, preload int) *Store {
	path := filepath.Join(b.TempDir(), "teos.db")
	if preload > 0 {
		copyFile(b, addFixture(b, preload), path)
	}
	s := mustOpen(b, path, nil)
	b.Cleanup(func() { _ = s.Close() })
	if preload == 0 {
		registerAll(b, s, benchUsers, ^uint32(0), ^uint32(0))
	}
	return s
}

func benchAdds(b *testing.B, preload, callers, items int) {
	timeAdds(b, benchStore(b, preload), preload, callers, items)
}

// timeAdds times b.N adds of new appointments (from benchAppointment(preload)) by callers
// concurrent callers storing items appointments per call.
func timeAdds(b *testing.B, s *Store, preload, callers, items int) {
	warm(b, s)

	txBefore := commits(b, s)
	stBefore := s.db.Stats().TxStats
	cpuBefore := cpuTime()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range callers {
		wg.Go(func() {
			batch := make([]AppointmentUpsert, 0, items)
			for {
				first := int(next.Add(int64(items))) - items
				if first >= b.N {
					return
				}
				batch = batch[:0]
				for i := first; i < min(first+items, b.N); i++ {
					a := benchAppointment(preload + i)
					batch = append(batch, AppointmentUpsert{Appointment: a, Policy: charge(a)})
				}
				res, err := s.UpsertAppointments(batch)
				for j := 0; err == nil && j < len(res); j++ {
					err = res[j].Err
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpuBefore
	st := s.db.Stats().TxStats
	n := float64(b.N)
	txs := float64(commits(b, s) - txBefore)
	writes := float64(st.GetWrite() - stBefore.GetWrite())
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/add")
	b.ReportMetric(n/txs, "adds/commit")
	b.ReportMetric(writes/txs, "writes/commit")
	b.ReportMetric(writes/n, "writes/add")
	b.ReportMetric(float64(st.GetNodeCount()-stBefore.GetNodeCount())/txs, "nodes/commit")
	b.ReportMetric(float64((st.GetSpillTime()-stBefore.GetSpillTime()).Microseconds())/n, "spill-µs/add")
	dbst := s.db.Stats()
	b.ReportMetric(float64(dbst.FreePageN+dbst.PendingPageN), "free-pages")
	b.ReportMetric(float64((st.GetWriteTime()-stBefore.GetWriteTime()).Microseconds())/txs, "write-µs/commit")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// addFixture returns a file holding n appointments stored as teosd stores them under load (64
// concurrent adds through the group commit, without fsync), built once and kept in the temp
// directory, so that both trees of an A/B run start from the same file.
func addFixture(b *testing.B, n int) string {
	b.Helper()
	// Named by the layout version and by how it is built (bump the r when that changes).
	path := filepath.Join(os.TempDir(), fmt.Sprintf("teos-storebench-v%d-r1-%d.db", dbVersion, n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	s := mustOpen(b, tmp, &Options{NoSync: true, NoLocatorFilter: true})
	registerAll(b, s, benchUsers, ^uint32(0), ^uint32(0))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				a := benchAppointment(i)
				if _, err := s.UpsertAppointments([]AppointmentUpsert{{Appointment: a, Policy: charge(a)}}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil || b.Failed() {
		b.Fatalf("build fixture: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

func copyFile(b *testing.B, from, to string) {
	b.Helper()
	in, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	_, err = io.Copy(out, in) // in the kernel: no 100 MB buffer for the GC to return later
	if err == nil {
		err = out.Sync() // else the first commit's fdatasync writes the whole copy back
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
}

// warm reads every page of the file through the store's mmap, so that the timed adds do not
// pay the page faults of a freshly opened file (a running tower has its hot pages mapped).
func warm(b *testing.B, s *Store) {
	b.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, bkt *bolt.Bucket) error {
			return bkt.ForEach(func(_, _ []byte) error { return nil })
		})
	})
	if err != nil {
		b.Fatal(err)
	}
}
