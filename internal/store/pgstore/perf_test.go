//go:build perf

package pgstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// TestPerfBlockLookup fills both engines with PERF_N appointments (300-byte blobs, n/1000
// users) and times a block's look-up: AppointmentsByLocators over 4,000 locators of which 10
// match, 20 blocks, p50 and max. It also prints the disk each engine uses per appointment.
func TestPerfBlockLookup(t *testing.T) {
	n := 1_000_000
	if v := os.Getenv("PERF_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	users := max(1, n/1000)
	const batch = 50_000
	appt := func(i int) *store.Appointment {
		var loc teos.Locator
		binary.BigEndian.PutUint64(loc[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.BigEndian.PutUint64(loc[8:], uint64(i))
		var u teos.UserID
		u[0] = 2
		binary.BigEndian.PutUint64(u[1:], uint64(i%users))
		blob := make([]byte, 300)
		binary.BigEndian.PutUint64(blob, uint64(i))
		return &store.Appointment{Appointment: teos.Appointment{Locator: loc, EncryptedBlob: blob, ToSelfDelay: 42},
			UserID: u, UserSignature: "sig", StartBlock: 100}
	}
	fill := func(s store.Engine) time.Duration {
		start := time.Now()
		us := map[teos.UserID]store.UserInfo{}
		for u := range users {
			var id teos.UserID
			id[0] = 2
			binary.BigEndian.PutUint64(id[1:], uint64(u))
			us[id] = store.UserInfo{AvailableSlots: 10000, SubscriptionExpiry: 1 << 30}
		}
		for lo := 0; lo < n; lo += batch {
			list := make([]*store.Appointment, 0, batch)
			for i := lo; i < min(n, lo+batch); i++ {
				list = append(list, appt(i))
			}
			if err := s.BulkLoad(us, list); err != nil {
				t.Fatal(err)
			}
			us = nil
		}
		return time.Since(start)
	}
	lookup := func(name string, s store.Engine) {
		rng := rand.New(rand.NewPCG(1, 2))
		var times []time.Duration
		for range 20 {
			locs := make([]teos.Locator, 0, 4000)
			for range 3990 {
				var l teos.Locator
				binary.BigEndian.PutUint64(l[:], rng.Uint64())
				binary.BigEndian.PutUint64(l[8:], rng.Uint64())
				locs = append(locs, l)
			}
			for range 10 {
				locs = append(locs, appt(rng.IntN(n)).Locator)
			}
			start := time.Now()
			m, err := s.AppointmentsByLocators(locs)
			times = append(times, time.Since(start))
			if err != nil || len(m) != 10 {
				t.Fatalf("%s: %d matches, %v", name, len(m), err)
			}
		}
		slices.Sort(times)
		fmt.Printf("RESULT %s at %d appointments: 4,000-locator block look-up p50 %.1f ms, max %.1f ms\n",
			name, n, float64(times[len(times)/2])/1e6, float64(times[len(times)-1])/1e6)
	}

	path := filepath.Join(t.TempDir(), "teos.db")
	b, err := store.Open(path, &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	took := fill(b)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	fmt.Printf("RESULT bbolt fill %d in %v; file %d bytes: %.0f B per appointment\n", n, took.Round(time.Second), st.Size(), float64(st.Size())/float64(n))
	lookup("bbolt", b)
	b.Close()

	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true}) // the fill only; look-ups do not write
	url := srv.NewDatabase(t)
	p := open(t, url, "regtest")
	defer p.Close()
	took = fill(p)
	if _, err := p.Pool().Exec(context.Background(), "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}
	var size int64
	if err := p.Pool().QueryRow(context.Background(), "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("RESULT PostgreSQL fill %d in %v; database %d bytes: %.0f B per appointment\n", n, took.Round(time.Second), size, float64(size)/float64(n))
	lookup("PostgreSQL", p)
}
