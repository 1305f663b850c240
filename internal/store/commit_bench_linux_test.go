package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
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
				benchAdds(b, preload, callers)
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

func benchAdds(b *testing.B, preload, callers int) {
	path := filepath.Join(b.TempDir(), "teos.db")
	if preload > 0 {
		copyFile(b, addFixture(b, preload), path)
	}
	s := mustOpen(b, path, nil)
	b.Cleanup(func() { _ = s.Close() })
	if preload == 0 {
		registerAll(b, s, benchUsers, ^uint32(0), ^uint32(0))
	}

	txBefore := commits(b, s)
	stBefore := s.db.Stats().TxStats
	cpuBefore := cpuTime()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range callers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				a := benchAppointment(preload + i)
				res, err := s.UpsertAppointments([]AppointmentUpsert{{Appointment: a, Policy: charge(a)}})
				if err == nil {
					err = res[0].Err
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
	path := filepath.Join(os.TempDir(), fmt.Sprintf("teos-storebench-v%d-%d.db", dbVersion, n))
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
	data, err := os.ReadFile(from)
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync() // else the first commit's fdatasync writes the whole copy back
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAddParts attributes an add's commit cost to the buckets it writes: each sub-benchmark
// runs the add load of BenchmarkAddDurable (64 callers, fsync on) but each call writes only
// the named part of what upsertAppointment writes (after the same reads).
func BenchmarkAddParts(b *testing.B) {
	parts := []struct {
		name  string
		write func(bk *buckets, a *Appointment, id teos.UUID, rec []byte) error
	}{
		{"none", func(*buckets, *Appointment, teos.UUID, []byte) error { return nil }},
		{"users", func(bk *buckets, a *Appointment, _ teos.UUID, _ []byte) error {
			u, _, err := getUser(bk, a.UserID)
			if err != nil {
				return err
			}
			next := u
			next.AvailableSlots--
			return putUser(bk, a.UserID, u, true, next)
		}},
		{"appointments", func(bk *buckets, _ *Appointment, id teos.UUID, rec []byte) error {
			return putAppointmentRecord(bk, id, rec)
		}},
		{"locator_idx", func(bk *buckets, a *Appointment, id teos.UUID, _ []byte) error {
			return bk.locatorIdx.Put(locatorKey(a.Locator, id), []byte{})
		}},
		{"user_appts", func(bk *buckets, a *Appointment, id teos.UUID, _ []byte) error {
			return bk.userAppts.Put(userApptKey(a.UserID, id), []byte{})
		}},
	}
	for _, preload := range []int{0, 200_000} {
		for _, part := range parts {
			b.Run(fmt.Sprintf("preload=%d/%s", preload, part.name), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "teos.db")
				if preload > 0 {
					copyFile(b, addFixture(b, preload), path)
				}
				s := mustOpen(b, path, nil)
				b.Cleanup(func() { _ = s.Close() })
				if preload == 0 {
					registerAll(b, s, benchUsers, ^uint32(0), ^uint32(0))
				}
				txBefore := commits(b, s)
				stBefore := s.db.Stats().TxStats
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range 64 {
					wg.Go(func() {
						for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
							a := benchAppointment(preload + i)
							id, rec := a.UUID(), encodeAppointment(a)
							err := s.batch(func(bk *buckets) error {
								if _, _, err := getUser(bk, a.UserID); err != nil {
									return err
								}
								_ = bk.appointments.Get(id[:])
								_ = bk.trackers.Get(id[:])
								// A meta write makes every call a real commit, as an add is.
								if err := bk.meta.Put([]byte("bench"), []byte{1}); err != nil {
									return err
								}
								return part.write(bk, a, id, rec)
							})
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				st := s.db.Stats().TxStats
				txs := float64(commits(b, s) - txBefore)
				b.ReportMetric(float64(b.N)/txs, "adds/commit")
				b.ReportMetric(float64(st.GetWrite()-stBefore.GetWrite())/txs, "writes/commit")
				b.ReportMetric(float64(st.GetNodeCount()-stBefore.GetNodeCount())/txs, "nodes/commit")
			})
		}
	}
}
