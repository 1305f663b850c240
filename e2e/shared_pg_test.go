package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/pkg/teos"
)

// waitLog waits until tw's log holds want n times (teosd logs leadership changes at info
// level) and returns when it saw it.
func waitLog(t *testing.T, tw *tower, want string, n int) time.Time {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(tw.logs(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %q (x%d) in the log:\n%s", want, n, tw.logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}

// TestSharedPostgresFailover runs two teosd instances on one PostgreSQL and one btcd: both
// serve the API with the same tower key while clients add appointments through both; the
// leader is SIGKILLed under load and a breach is mined right after; the follower takes over,
// answers the breach and keeps every acknowledged appointment; a late appointment added
// through the (restarted) former leader, now a follower, reaches the new leader through the
// database and is answered too.
func TestSharedPostgresFailover(t *testing.T) {
	pg := pgtest.Start(t, nil)
	url := pg.NewDatabase(t)
	node := startNode(t)
	c := newChain(t, node)
	toml := fmt.Sprintf("database_url = %q\n", url)
	a, b := newTower(t, node, toml), newTower(t, node, toml)
	a.start()
	waitLog(t, a, "leadership acquired", 1)
	b.start()
	waitLog(t, b, "following: another instance leads", 1)
	if a.id != b.id {
		t.Fatalf("instances have different tower ids: %s, %s", a.id, b.id)
	}
	wantRoles(t, a, b)

	alice := newUser(t)
	alice.register(t, a)
	breach, late := node.NewBreach(t), node.NewBreach(t)
	alice.add(t, b, breachAppointment(t, breach)) // through the follower

	// Load: clients add through both instances until told to stop.
	var (
		mu    sync.Mutex
		acks  []teos.Locator
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		fails = map[string]int{}
	)
	for i := range 4 {
		tw := []*tower{a, b}[i%2]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ap := randomAppointment(t, 100)
				body, _ := json.Marshal(alice.addRequest(ap))
				code, raw, err := tryPost(tw.apiURL+"/add_appointment", body)
				mu.Lock()
				if err == nil && code == 200 {
					acks = append(acks, ap.Locator)
				} else if err != nil {
					fails["no answer"]++
					mu.Unlock()
					time.Sleep(10 * time.Millisecond) // the killed instance: do not spin
					continue
				} else {
					fails[fmt.Sprintf("%d %s", code, raw)]++
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second) // under load

	a.kill()
	killed := time.Now()
	c.send(t, breach.Commitment)
	c.mine(t)
	mined := time.Now()
	took := waitLog(t, b, "first block processed as leader", 1).Sub(killed)
	latency := c.waitInMempool(t, breach.Penalty.TxHash(), mined)
	t.Logf("failover: kill to first block processed by the new leader %v; penalty in the mempool %v after the breach's block",
		took.Round(time.Millisecond), latency.Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // more load on the new leader
	close(stop)
	wg.Wait()
	t.Logf("%d appointments acknowledged through both instances; unanswered or refused: %v", len(acks), fails)
	for f := range fails {
		if f != "no answer" {
			t.Errorf("an add was refused rather than left unanswered: %s", f)
		}
	}
	if len(acks) == 0 {
		t.Fatal("no appointment acknowledged under load")
	}
	for _, loc := range acks {
		if code, got := alice.get(t, b, loc); code != 200 || got["status"] != "being_watched" {
			t.Fatalf("acknowledged appointment %s: %d %v", loc, code, got)
		}
	}
	alice.wantResponded(t, b, breach)

	// The killed instance rejoins as a follower.
	a.start()
	waitLog(t, a, "following: another instance leads", 1)
	if strings.Count(a.logs(), "leadership acquired") != 1 {
		t.Fatalf("the restarted instance took the leadership:\n%s", a.logs())
	}
	wantRoles(t, b, a)
	// A late appointment through the follower: its dispute is mined first.
	c.send(t, late.Commitment)
	c.mine(t)
	h := c.tip(t)
	waitTowerAt(t, a, h)
	added := time.Now()
	alice.add(t, a, breachAppointment(t, late))
	t.Logf("late appointment through the follower: penalty in the mempool %v after the add",
		c.waitInMempool(t, late.Penalty.TxHash(), added).Round(time.Millisecond))
	b.stop()
	a.stop()
}

// TestSharedPostgresOutage stops PostgreSQL under a running teosd: adds are held as for any
// transient fault and, past the hold bound (2 s here), answered 503 (never a rejection), teosd
// keeps running, and once the database is back the same instance accepts adds and leads again.
func TestSharedPostgresOutage(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	node := startNode(t)
	tw := newTower(t, node, fmt.Sprintf("database_url = %q\n", pg.NewDatabase(t)))
	tw.start("--apiholdtimeout", "2")
	waitLog(t, tw, "leadership acquired", 1)
	alice := newUser(t)
	alice.register(t, tw)
	alice.add(t, tw, randomAppointment(t, 100))

	pg.Stop()
	waitLog(t, tw, "stepping down", 1)
	waitLog(t, tw, "database unreachable", 1)
	body, _ := json.Marshal(alice.addRequest(randomAppointment(t, 100)))
	code, raw, err := tryPost(tw.apiURL+"/add_appointment", body)
	if err != nil || code != 503 {
		t.Fatalf("add with the database down: %d %s %v; want 503 past the hold bound", code, raw, err)
	}
	if !strings.Contains(tw.logs(), "store refuses writes") {
		t.Fatalf("the add was not held on the store:\n%s", tw.logs())
	}
	t.Logf("database down: %d %s", code, raw)
	select {
	case <-tw.done:
		t.Fatalf("teosd exited with the database down: %v", tw.exitErr())
	default:
	}

	pg.Restart()
	waitLog(t, tw, "leadership acquired", 2)
	a := randomAppointment(t, 100)
	alice.add(t, tw, a)
	if code, got := alice.get(t, tw, a.Locator); code != 200 || got["status"] != "being_watched" {
		t.Fatalf("get after the outage: %d %v", code, got)
	}
	tw.stop()
}

// TestSharedPostgresRefusals: teosd refuses to start, with a one-line reason, on a database it
// cannot reach and on a database that belongs to another network's tower.
func TestSharedPostgresRefusals(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	node := startNode(t)
	url := pg.NewDatabase(t)
	tw := newTower(t, node, fmt.Sprintf("database_url = %q\n", url))
	tw.start() // creates the schema for regtest
	tw.stop()

	run := func(dbURL string, extra ...string) string {
		t.Helper()
		args := append(append([]string{}, tw.args...), "--databaseurl", dbURL)
		args = append(args, extra...)
		out, err := exec.Command(teosdBin, args...).CombinedOutput()
		if err == nil {
			t.Fatalf("teosd started with %v:\n%s", extra, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Logf("refused: %s", lines[len(lines)-1])
		return lines[len(lines)-1]
	}
	dead := fmt.Sprintf("postgres://teos@127.0.0.1:%d/x?sslmode=disable", freePort(t))
	if last := run(dead); !strings.Contains(last, "open database") || !strings.Contains(last, "connection refused") {
		t.Fatalf("unreachable database: %q", last)
	}
	// The same database for a testnet tower (bitcoind's network is checked only afterwards).
	if last := run(url, "--btcnetwork", "testnet"); !strings.Contains(last, "another network") || !strings.Contains(last, "regtest") {
		t.Fatalf("another network's database: %q", last)
	}
}

// instanceName is how teosd names an instance to the others: host and API address.
func instanceName(t *testing.T, tw *tower) string {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	name := host + "/" + strings.TrimPrefix(tw.apiURL, "http://")
	return name[:min(len(name), 63)] // what PostgreSQL keeps of a connection's name
}

// wantRoles checks what `teos-cli gettowerinfo` says of the leadership on both instances:
// each its role and name, and both the same leader. An instance that just stepped down learns
// who leads at its next election round: the check waits for that.
func wantRoles(t *testing.T, leader, follower *tower) {
	t.Helper()
	for _, c := range []struct {
		tw   *tower
		role string
	}{{leader, "leader"}, {follower, "follower"}} {
		var info cliTowerInfo
		ok := func() bool {
			info = cliTowerInfo{}
			c.tw.cliOK(t, &info, "gettowerinfo")
			return info.Role == c.role && info.Instance != nil && *info.Instance == instanceName(t, c.tw) &&
				info.Leader != nil && *info.Leader == instanceName(t, leader) && info.FrontEnds != nil
		}
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("gettowerinfo of the %s: %+v (instance %v, leader %v); want leader %s",
					c.role, info, deref(info.Instance), deref(info.Leader), instanceName(t, leader))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}
