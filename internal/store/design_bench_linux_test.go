package store

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// The benchmarks in this file measure the potential of two designs that are NOT implemented,
// to size them against BenchmarkAddDurable (the add path as it is). Each add writes leaves of
// three trees keyed at random (appointments by UUID, locator_idx, user_appts) plus their
// parent branches; the kernel's cost per written page (pwrite, then writeback in fdatasync)
// dominates a commit's CPU. Both designs move work out of the acknowledged commit into big
// background transactions, where adds share branch pages.

var bktBenchPending = []byte("bench_pending_idx")

// BenchmarkDesignDeferredIndex: the acknowledged commit writes the appointment, its owner and
// an append to a queue of index entries still to write (keyed by a sequence number, so
// appends share the queue's last leaf); a background fold writes the locator_idx and
// user_appts entries of 4096 queued adds per transaction and empties the queue. Readers
// would have to consult the queued entries (in memory) until the fold. Reports the CPU and
// page writes of both phases per add.
func BenchmarkDesignDeferredIndex(b *testing.B) {
	const preload = 200_000
	s := benchStore(b, preload)
	if err := s.db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bktBenchPending); return err }); err != nil {
		b.Fatal(err)
	}
	warm(b, s)
	b.ReportAllocs()
	b.ResetTimer()

	// The acknowledged commits: 64 callers, one add each per call.
	tx0, st0, cpu0 := commits(b, s), s.db.Stats().TxStats, cpuTime()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
				a := benchAppointment(preload + i)
				id, rec := a.UUID(), encodeAppointment(a)
				err := s.batch(func(bk *buckets) error {
					u, ok, err := getUser(bk, a.UserID)
					if err != nil || !ok {
						return err
					}
					v := bk.appointments.Get(id[:])
					_ = bk.trackers.Get(id[:])
					next := u
					next.AvailableSlots--
					if err := putUser(bk, a.UserID, u, true, next); err != nil {
						return err
					}
					if err := putAppointmentRecordKnown(bk, id, rec, v == nil); err != nil {
						return err
					}
					q := bk.meta.Tx().Bucket(bktBenchPending)
					seq, err := q.NextSequence()
					if err != nil {
						return err
					}
					return q.Put(binary.BigEndian.AppendUint64(nil, seq), id[:])
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	syncCPU, st1, tx1 := cpuTime()-cpu0, s.db.Stats().TxStats, commits(b, s)

	// The fold, 4096 queued adds per transaction.
	const fold = 4096
	for done := false; !done; {
		err := s.db.Update(func(tx *bolt.Tx) error {
			bk, err := openBuckets(tx)
			if err != nil {
				return err
			}
			q := tx.Bucket(bktBenchPending)
			c := q.Cursor()
			n := 0
			for k, v := c.First(); k != nil && n < fold; k, v = c.First() {
				id := teos.UUID(v)
				rec := bk.appointments.Get(id[:])
				loc, user, _, err := appointmentHead(rec)
				if err != nil {
					return err
				}
				if err := bk.locatorIdx.Put(locatorKey(loc, id), []byte{}); err != nil {
					return err
				}
				if err := bk.userAppts.Put(userApptKey(user, id), []byte{}); err != nil {
					return err
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
			done = n < fold
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	foldCPU, st2 := cpuTime()-cpu0-syncCPU, s.db.Stats().TxStats
	n := float64(b.N)
	b.ReportMetric(float64(syncCPU.Microseconds())/n, "sync-cpu-µs/add")
	b.ReportMetric(float64(foldCPU.Microseconds())/n, "fold-cpu-µs/add")
	b.ReportMetric(float64(st1.GetWrite()-st0.GetWrite())/n, "sync-writes/add")
	b.ReportMetric(float64(st2.GetWrite()-st1.GetWrite())/n, "fold-writes/add")
	b.ReportMetric(n/float64(tx1-tx0), "adds/commit")
}

// BenchmarkDesignLog: the acknowledged commit only appends the adds' records to a log file
// (one write and one fdatasync per group of 32, the group size 64 callers make); a background
// fold would then store them as BenchmarkAddBatched/.../items=4096 does. This measures the
// log's share; the fold's is that benchmark's.
func BenchmarkDesignLog(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "adds.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const group = 32
	buf := make([]byte, 0, group*700)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i += group {
		buf = buf[:0]
		for j := i; j < min(i+group, b.N); j++ {
			rec := encodeAppointment(benchAppointment(j))
			buf = binary.AppendUvarint(buf, uint64(len(rec)))
			buf = append(buf, rec...)
		}
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil { // fsync: the file grows, so fdatasync would sync its size too
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/add")
}
