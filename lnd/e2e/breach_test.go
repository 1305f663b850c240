package e2e

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/pgtest"
)

// teosd is the lnd-enabled tower process.
type teosd struct {
	p       *proc
	id      string // tower_id, 66 hex
	lndAddr string // lnd_tower_bind
	metrics string // metrics_bind
	api     string // the teos HTTP API, host:port
	dataDir string
	rpcPort string // the admin RPC's, for teos-cli
}

// metric returns the value of an unlabelled metric on teosd's /metrics.
func (tw *teosd) metric(t testing.TB, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + tw.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// startTeosd starts the lnd-enabled teosd; extraToml is added to its teos.toml.
func startTeosd(t testing.TB, node *btcdtest.Node, extraToml string) *teosd {
	t.Helper()
	return startTeosdUnder(t, node, extraToml, nil)
}

// startTeosdUnder is startTeosd with teosd run by the command wrap (e.g. prlimit), which
// must exec it (stop signals the pid started).
func startTeosdUnder(t testing.TB, node *btcdtest.Node, extraToml string, wrap []string) *teosd {
	t.Helper()
	dataDir := t.TempDir()
	host, port, _ := strings.Cut(node.RPCHost, ":")
	toml := fmt.Sprintf("internal_api_port = %s\npolling_interval = \"100ms\"\n%s", portOf(freeAddr(t)), extraToml)
	if err := os.WriteFile(filepath.Join(dataDir, "teos.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	tw := &teosd{lndAddr: freeAddr(t), metrics: freeAddr(t), api: freeAddr(t), dataDir: dataDir, rpcPort: portOf(freeAddr(t))}
	ids := make(chan string, 1)
	var once sync.Once
	args := []string{
		"--datadir", dataDir, "--btcnetwork", "regtest",
		"--btcrpcuser", node.User, "--btcrpcpassword", node.Pass,
		"--btcrpcconnect", host, "--btcrpcport", port,
		"--apibind", "127.0.0.1", "--apiport", portOf(tw.api), "--rpcport", tw.rpcPort,
		"--lndtowerbind", tw.lndAddr, "--metricsbind", tw.metrics, "--debug",
	}
	bin := teosdBin
	if len(wrap) > 0 {
		bin, args = wrap[0], append(append(wrap[1:len(wrap):len(wrap)], teosdBin), args...)
	}
	tw.p = startProc(t, "teosd", bin, args, func(line string) {
		if id, ok := strings.CutPrefix(line, "tower_id: "); ok {
			once.Do(func() { ids <- id })
		}
	})
	// Registered after startProc's cleanup, so it runs first: stop, then read everything
	// teosd wrote. A race-built teosd reports a race on stderr (and exits 66).
	t.Cleanup(func() {
		tw.p.stop(t)
		if raceEnabled && strings.Contains(tw.p.logs(), "WARNING: DATA RACE") {
			t.Errorf("teosd reported a data race (exit: %v):\n%s", tw.p.err, raceReports(tw.p.logs()))
		}
	})
	select {
	case tw.id = <-ids:
	case <-time.After(60 * time.Second):
		t.Fatalf("teosd printed no tower id")
	}
	waitFor(t, 60*time.Second, "teosd's lnd listener", func() (bool, error) {
		if tw.p.exited() {
			t.Fatalf("teosd exited: %v", tw.p.err)
		}
		return strings.Contains(tw.p.logs(), "lnd tower ready"), nil
	})
	return tw
}

// raceReports cuts the race detector's reports out of a log.
func raceReports(log string) string {
	var out []string
	for _, r := range strings.Split(log, "==================\n")[1:] {
		if strings.HasPrefix(r, "WARNING: DATA RACE") {
			out = append(out, r)
		}
	}
	return strings.Join(out, "==================\n")
}

func portOf(addr string) string {
	_, p, _ := strings.Cut(addr, ":")
	return p
}

var justiceRe = regexp.MustCompile(`justice transaction handed to the responder.* breach_txid=([0-9a-f]{64}) justice_txid=([0-9a-f]{64})`)

// TestLndBreachThroughTeosd: the victim's lnd backs its anchors channel up to teosd through
// lnd's own watchtower client; with the victim offline the cheater broadcasts a revoked
// commitment; teosd builds and broadcasts the justice transaction, which confirms; the
// victim's lnd, back online, finds its channel closed as a breach.
func TestLndBreachThroughTeosd(t *testing.T) { lndBreachThroughTeosd(t, anchors) }

// TestLndTaprootBreachThroughTeosd: the same with a taproot channel. lnd's client backs it up
// in "taproot-final" sessions (blob type commit outputs | taproot | taproot final, Init with
// the taproot-commit feature required), which lnd's tower code reused here accepts.
func TestLndTaprootBreachThroughTeosd(t *testing.T) { lndBreachThroughTeosd(t, taproot) }

func lndBreachThroughTeosd(t *testing.T, k chanKind) {
	requireLnd(t)
	began := time.Now()
	node := btcdtest.Start(t)
	node.Generate(t, 110) // teosd needs 100 blocks; coinbases 1..10 are mature
	tw := startTeosd(t, node, "")
	t.Logf("teosd up, tower_id %s, lnd tower at %s (%v)", tw.id, tw.lndAddr, time.Since(began))
	lndBreach(t, node, tw, tw, k, began)
}

// TestLndBreachThroughSharedPostgres is the anchors breach with two teosd instances on one
// PostgreSQL: the victim's lnd backs up to the follower, and the leader's block processing
// finds the breach in the sessions the follower stored and sends the justice transaction.
func TestLndBreachThroughSharedPostgres(t *testing.T) {
	requireLnd(t)
	began := time.Now()
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	toml := fmt.Sprintf("database_url = %q\n", pg.NewDatabase(t))
	node := btcdtest.Start(t)
	node.Generate(t, 110)
	leader := startTeosd(t, node, toml)
	waitFor(t, 60*time.Second, "the first instance's leadership", func() (bool, error) {
		return strings.Contains(leader.p.logs(), "leadership acquired"), nil
	})
	follower := startTeosd(t, node, toml)
	waitFor(t, 60*time.Second, "the second instance following", func() (bool, error) {
		return strings.Contains(follower.p.logs(), "following: another instance leads"), nil
	})
	if leader.id != follower.id {
		t.Fatalf("instances have different tower ids: %s, %s", leader.id, follower.id)
	}
	t.Logf("two teosd on PostgreSQL, tower_id %s; lnd client -> follower at %s (%v)", follower.id, follower.lndAddr, time.Since(began))
	lndBreach(t, node, follower, leader, anchors, began)
	if strings.Contains(follower.p.logs(), "justice transaction handed") {
		t.Fatal("the follower handed a justice transaction over")
	}
}

// lndBreach runs the breach for a channel of kind k: the victim's lnd backs up to client; the
// justice transaction is expected from leader (the same process with one instance).
func lndBreach(t *testing.T, node *btcdtest.Node, client, leader *teosd, k chanKind, began time.Time) {
	proxy, cert := tlsProxy(t, node.RPCHost)
	tw := client
	if s, u, j := tw.lndFrontEnd(t); s != 0 || u != 0 || j != 0 {
		t.Fatalf("gettowerinfo before any client: %d sessions, %d updates, %d justice txs", s, u, j)
	}

	alice := newLnd(t, "alice", proxy, cert, node, append([]string{"--wtclient.active"}, k.lndArgs...)...) // the victim
	bob := newLnd(t, "bob", proxy, cert, node, k.lndArgs...)                                               // the cheater
	startAll(t, alice, bob)
	t.Logf("lnd nodes up (%v)", time.Since(began))

	f := &funder{node: node, next: 1}
	lncli(t, alice, nil, "wtclient", "add", tw.id+"@"+tw.lndAddr)
	chanPoint := openChannel(t, node, f, alice, bob, k)
	t.Logf("channel open (%v)", time.Since(began))
	pay(t, alice, bob, 300_000)
	pay(t, alice, bob, 200_000)
	old := keepState(t, alice, bob) // the cheater keeps the state where he has 500,000 sat
	pay(t, alice, bob, 100_000)     // revokes the kept state
	pay(t, alice, bob, 50_000)

	waitFor(t, 120*time.Second, "alice's backups to teosd", func() (bool, error) {
		var st struct {
			NumBackups        uint32 `json:"num_backups"`
			NumPendingBackups uint32 `json:"num_pending_backups"`
			NumFailedBackups  uint32 `json:"num_failed_backups"`
		}
		if err := lncliJSON(t, alice, &st, "wtclient", "stats"); err != nil {
			return false, err
		}
		if st.NumFailedBackups > 0 {
			t.Fatalf("alice's tower client reports %d failed backups", st.NumFailedBackups)
		}
		return st.NumBackups >= 4 && st.NumPendingBackups == 0, fmt.Errorf("%+v", st)
	})
	t.Logf("states backed up to teosd (%v)", time.Since(began))
	if n := backupsOfPolicy(t, alice, k.policy); n < 4 {
		t.Fatalf("alice's %s sessions with teosd hold %d backups, want at least 4", k.policy, n)
	}
	if s, u := tw.metric(t, "teos_lnd_sessions"), tw.metric(t, "teos_lnd_state_updates"); s < 1 || u < 4 {
		t.Fatalf("teosd's metrics: %v lnd sessions, %v state updates", s, u)
	}

	// The victim goes offline; the cheater restores the revoked state and force-closes.
	closingTxid := cheat(t, alice, bob, old, chanPoint)
	// The operator sees the same through teos-cli (alice is offline: nothing moves).
	if s, u, j := tw.lndFrontEnd(t); float64(s) != tw.metric(t, "teos_lnd_sessions") ||
		float64(u) != tw.metric(t, "teos_lnd_state_updates") || s < 1 || u < 4 || j != 0 {
		t.Fatalf("gettowerinfo: %d sessions, %d updates, %d justice txs; metrics %v, %v", s, u, j,
			tw.metric(t, "teos_lnd_sessions"), tw.metric(t, "teos_lnd_state_updates"))
	}
	// The port's own counts: every stored update was answered OK on it.
	if _, u, _ := tw.lndFrontEnd(t); tw.metric(t, "teos_lnd_state_updates_accepted_total") != float64(u) ||
		tw.metric(t, "teos_lnd_sessions_accepted_total") < 1 || tw.metric(t, `teos_lnd_handshakes_total{outcome="completed"}`) < 1 {
		t.Fatalf("lnd port metrics: %v updates accepted (%d stored), %v sessions accepted, %v handshakes",
			tw.metric(t, "teos_lnd_state_updates_accepted_total"), u, tw.metric(t, "teos_lnd_sessions_accepted_total"),
			tw.metric(t, `teos_lnd_handshakes_total{outcome="completed"}`))
	}
	t.Logf("revoked commitment %s broadcast (%v)", closingTxid, time.Since(began))

	node.Generate(t, 1)
	var breachTxid, justiceTxid string
	waitFor(t, 60*time.Second, "teosd's justice transaction", func() (bool, error) {
		m := justiceRe.FindStringSubmatch(leader.p.logs())
		if m == nil {
			return false, nil
		}
		breachTxid, justiceTxid = m[1], m[2]
		return true, nil
	})
	if breachTxid != closingTxid {
		t.Fatalf("teosd answered breach %s, the cheater broadcast %s", breachTxid, closingTxid)
	}
	jh, err := chainhash.NewHashFromStr(justiceTxid)
	if err != nil {
		t.Fatal(err)
	}
	rpc := node.RPC(t)
	waitFor(t, 60*time.Second, "the justice transaction in the mempool", func() (bool, error) {
		pool, err := rpc.GetRawMempool()
		if err != nil {
			return false, err
		}
		for _, h := range pool {
			if *h == *jh {
				return true, nil
			}
		}
		return false, nil
	})
	blocks := node.Generate(t, 1)
	block, err := rpc.GetBlock(blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	var justice []byte
	for _, tx := range block.Transactions {
		if tx.TxHash() == *jh {
			var buf bytes.Buffer
			if err := tx.Serialize(&buf); err != nil {
				t.Fatal(err)
			}
			justice = buf.Bytes()
			for _, in := range tx.TxIn {
				if in.PreviousOutPoint.Hash.String() != breachTxid {
					t.Errorf("justice input %v does not spend the breach", in.PreviousOutPoint)
				}
			}
		}
	}
	if justice == nil {
		t.Fatalf("justice transaction %s not mined in the next block", justiceTxid)
	}
	// Counted once the block's trackers are committed, after the log line and the broadcast.
	waitFor(t, 60*time.Second, "the justice transaction counted", func() (bool, error) {
		n := leader.metric(t, "teos_lnd_justice_txs_total")
		return n >= 1, fmt.Errorf("teos_lnd_justice_txs_total = %v", n)
	})
	if n := leader.metric(t, "teos_lnd_justice_txs_total"); n != 1 {
		t.Fatalf("teos_lnd_justice_txs_total = %v, want 1", n)
	}
	if _, _, j := leader.lndFrontEnd(t); j != 1 {
		t.Fatalf("gettowerinfo: %d justice txs, want 1", j)
	}
	t.Logf("justice transaction %s confirmed: %s (%v)", justiceTxid, hex.EncodeToString(justice)[:32]+"...", time.Since(began))

	// The victim comes back and finds the channel closed as a breach.
	alice.start(t)
	waitFor(t, 180*time.Second, "alice's BREACH_CLOSE", func() (bool, error) {
		var cc struct {
			Channels []struct {
				ChannelPoint string `json:"channel_point"`
				CloseType    string `json:"close_type"`
				ClosingTxid  string `json:"closing_tx_hash"`
			} `json:"channels"`
		}
		if err := lncliJSON(t, alice, &cc, "closedchannels"); err != nil {
			return false, err
		}
		for _, c := range cc.Channels {
			if c.ChannelPoint == chanPoint {
				if c.CloseType != "BREACH_CLOSE" {
					return false, fmt.Errorf("close type %s", c.CloseType)
				}
				return true, nil
			}
		}
		node.Generate(t, 1)
		return false, fmt.Errorf("%d closed channels", len(cc.Channels))
	})
	t.Logf("alice's lnd reports BREACH_CLOSE; whole test %v", time.Since(began))
}
