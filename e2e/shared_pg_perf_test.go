//go:build perf

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
)

func addRate(r benchReport) (float64, int) {
	for _, e := range r.Endpoints {
		if e.Endpoint == "add_appointment" {
			return e.OKPerSec, e.Requests - int(e.Errors)
		}
	}
	return 0, 0
}

func pgSize(t *testing.T, url string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, "CHECKPOINT; SELECT pg_database_size(current_database())").Scan(&n); err != nil {
		// CHECKPOINT needs a superuser; the test's role is one.
		if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestPerfSharedPostgres measures durable add_appointment/s over HTTP in one run: teosd on
// bbolt, on PostgreSQL (fsync on) with one instance, and with two instances on the same
// database each loaded by its own teos-bench; and the disk each engine uses per appointment.
func TestPerfSharedPostgres(t *testing.T) {
	node := startNode(t)
	pg := pgtest.Start(t, nil)
	clients := envInt(t, "PERF_CLIENTS", 64)
	d := envDuration(t, "PERF_DURATION", 15*time.Second)
	c := strconv.Itoa(clients)
	args := []string{"-users", c, "-c", c, "-duration", d.String(), "-bound", "0"}

	bolt := newTower(t, node, "")
	bolt.start()
	path := filepath.Join(bolt.dataDir, "regtest", "teos.db")
	st0, _ := os.Stat(path)
	rate, n := addRate(runBench(t, bolt, args...))
	bolt.stop()
	st1, _ := os.Stat(path)
	fmt.Printf("\nRESULT bbolt, 1 instance: %.0f add/s (%d adds); file %d -> %d bytes: %.0f B per appointment\n",
		rate, n, st0.Size(), st1.Size(), float64(st1.Size()-st0.Size())/float64(max(n, 1)))

	url := pg.NewDatabase(t)
	toml := fmt.Sprintf("database_url = %q\n", url)
	a := newTower(t, node, toml)
	a.start()
	waitLog(t, a, "leadership acquired", 1)
	size0 := pgSize(t, url)
	rate, n = addRate(runBench(t, a, args...))
	size1 := pgSize(t, url)
	fmt.Printf("\nRESULT PostgreSQL, 1 instance: %.0f add/s (%d adds); database %d -> %d bytes: %.0f B per appointment\n",
		rate, n, size0, size1, float64(size1-size0)/float64(max(n, 1)))

	b := newTower(t, node, toml)
	b.start()
	waitLog(t, b, "following: another instance leads", 1)
	half := strconv.Itoa(max(1, clients/2))
	args2 := []string{"-users", half, "-c", half, "-duration", d.String(), "-bound", "0"}
	cmdA, outA := benchCmd(t, a, args2...)
	cmdB, outB := benchCmd(t, b, args2...)
	if err := cmdA.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cmdB.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cmdA.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := cmdB.Wait(); err != nil {
		t.Fatal(err)
	}
	ra, na := addRate(readBenchReport(t, outA))
	rb, nb := addRate(readBenchReport(t, outB))
	fmt.Printf("\nRESULT PostgreSQL, 2 instances (%s clients each): %.0f + %.0f = %.0f add/s (%d adds)\n", half, ra, rb, ra+rb, na+nb)
	a.stop()
	b.stop()
}
