//go:build perf

package pgstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// TestPerfUserLocatorsScaling times UserLocators for one user holding n and then 8n
// appointments (beside 10 other users holding as many): linear cost takes about 8 times as
// long, quadratic 64 times. It prints the query plan.
func TestPerfUserLocatorsScaling(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	p := open(t, srv.NewDatabase(t), "regtest")
	defer p.Close()
	const others = 10
	user := func(u int) teos.UserID {
		var id teos.UserID
		id[0] = 2
		binary.BigEndian.PutUint64(id[1:], uint64(u))
		return id
	}
	users := map[teos.UserID]store.UserInfo{}
	for u := range others + 1 {
		users[user(u)] = store.UserInfo{AvailableSlots: 1, SubscriptionExpiry: 1 << 30}
	}
	next, stored := 0, 0
	fillTo := func(n int) { // user 0 gets n appointments in all, each other user as many
		for stored < n {
			list := make([]*store.Appointment, 0, 20_000)
			for range 20_000 / (others + 1) {
				for u := range others + 1 {
					var loc teos.Locator
					binary.BigEndian.PutUint64(loc[:], uint64(next)*0x9e3779b97f4a7c15)
					binary.BigEndian.PutUint64(loc[8:], uint64(next))
					next++
					list = append(list, &store.Appointment{Appointment: teos.Appointment{Locator: loc, EncryptedBlob: make([]byte, 300), ToSelfDelay: 42},
						UserID: user(u), UserSignature: "sig", StartBlock: 100})
				}
				stored++
			}
			if err := p.BulkLoad(users, list); err != nil {
				t.Fatal(err)
			}
			users = nil
		}
		if _, err := p.Pool().Exec(context.Background(), "VACUUM ANALYZE"); err != nil {
			t.Fatal(err)
		}
	}
	timeIt := func() time.Duration {
		var times []time.Duration
		for range 5 {
			start := time.Now()
			locs, err := p.UserLocators(user(0))
			times = append(times, time.Since(start))
			if err != nil || len(locs) != stored {
				t.Fatalf("%d locators, %v; want %d", len(locs), err, stored)
			}
		}
		slices.Sort(times)
		return times[len(times)/2]
	}
	fillTo(32_000)
	small, n1 := timeIt(), stored
	fillTo(8 * 32_000)
	big, n2 := timeIt(), stored
	fmt.Printf("RESULT PostgreSQL UserLocators: %d locators %v (%.0f ns each), %d locators %v (%.0f ns each): x%.1f for x%.1f\n",
		n1, small, float64(small)/float64(n1), n2, big, float64(big)/float64(n2), float64(big)/float64(small), float64(n2)/float64(n1))
	u0 := user(0)
	rows, err := p.Pool().Query(context.Background(), `EXPLAIN ANALYZE SELECT locator FROM appointments WHERE user_id = $1 ORDER BY uuid`, u0[:])
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		_ = rows.Scan(&line)
		plan = append(plan, line)
	}
	fmt.Printf("RESULT plan:\n%s\n", strings.Join(plan, "\n"))
}
