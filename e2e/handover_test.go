package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// TestLateAppointment sends an appointment whose dispute is already in the tip block: the
// answer is the usual receipt, exactly the fields rust-teos answers, and the tower broadcasts
// the penalty on its own (the chain goroutine hands it over) without waiting for a block.
func TestLateAppointment(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()
	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	b := node.NewBreach(t)
	c.send(t, b.Commitment)
	block, tip := c.mine(t)
	if !blockHas(block, b.Commitment) {
		t.Fatal("commitment not mined")
	}
	waitTowerAt(t, tw, tip)

	a := breachAppointment(t, b)
	req := alice.addRequest(a)
	start := time.Now()
	var r addResp
	code, raw := post(t, tw.apiURL, "/add_appointment", req, &r)
	if code != 200 {
		t.Fatalf("add_appointment: %d %s", code, raw)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"available_slots", "locator", "signature", "start_block", "subscription_expiry"}; !slices.Equal(keys, want) {
		t.Fatalf("receipt fields %v, want %v", keys, want)
	}
	if r.Locator != a.Locator.String() || r.StartBlock != tip || r.AvailableSlots != slots-1 {
		t.Fatalf("receipt %+v; want locator %s, start_block %d, available_slots %d", r, a.Locator, tip, slots-1)
	}
	if !wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(req["signature"].(string), r.StartBlock), r.Signature, tw.id) {
		t.Fatal("receipt not signed by the tower")
	}
	t.Logf("penalty in the mempool %v after the late appointment's receipt", c.waitInMempool(t, b.Penalty.TxHash(), start))
	alice.waitResponded(t, tw, b)
	// Sent again once it is tracked: rust-teos's answer to a triggered appointment.
	if code, raw := post(t, tw.apiURL, "/add_appointment", req, nil); code != 400 || !bytes.Contains(raw, []byte(`"error_code":35`)) {
		t.Fatalf("add_appointment again: %d %s, want 400 with error_code 35", code, raw)
	}
	if block, _ := c.mine(t); !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	tw.stop()
}

// rpcFilter forwards bitcoind JSON-RPC and cuts the connection of the calls whose method is
// blocked, as a bitcoind that stops answering would.
type rpcFilter struct {
	*rpcProxy
	mu      sync.Mutex
	blocked map[string]bool
	refused atomic.Int64
}

func startRPCFilter(t *testing.T, target string) *rpcFilter {
	t.Helper()
	f := &rpcFilter{blocked: map[string]bool{}}
	f.rpcProxy = startRPCProxy(t, target, func(w http.ResponseWriter, _ *http.Request, call *rpcCall) bool {
		f.mu.Lock()
		blocked := f.blocked[call.Method]
		f.mu.Unlock()
		if !blocked {
			return false
		}
		f.refused.Add(1)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return true
	})
	return f
}

func (f *rpcFilter) block(block bool, methods ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range methods {
		f.blocked[m] = block
	}
}

// TestQueuedHandOverSurvivesRestart accepts a late appointment while bitcoind fails every
// transaction call, so its hand-over stays queued; teosd is stopped with it in the queue (in
// the store), and once restarted with bitcoind healthy it broadcasts the penalty by itself.
func TestQueuedHandOverSurvivesRestart(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	filter := startRPCFilter(t, node.RPCHost)
	tw := newTower(t, node, "")
	tw.args = append(tw.args, "--btcrpcport", filter.port()) // the last value of a flag wins
	tw.start()
	alice := newUser(t)
	alice.register(t, tw)
	b := node.NewBreach(t)
	c.send(t, b.Commitment)
	if block, tip := c.mine(t); !blockHas(block, b.Commitment) {
		t.Fatal("commitment not mined")
	} else {
		waitTowerAt(t, tw, tip)
	}

	txCalls := []string{"sendrawtransaction", "getrawtransaction"}
	filter.block(true, txCalls...)
	a := breachAppointment(t, b)
	alice.add(t, tw, a)
	waitFor(t, "the hand-over to reach bitcoind", func() bool { return filter.refused.Load() > 0 })
	tw.stop()
	if c.inMempool(t, b.Penalty.TxHash()) {
		t.Fatal("penalty broadcast although every transaction call failed")
	}

	path := filepath.Join(tw.dataDir, "regtest", "teos.db")
	s, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	queued, err := s.QueuedHandOvers()
	if cerr := s.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if id := teos.NewUUID(a.Locator, alice.id); len(queued) != 1 || queued[0].UUID != id || queued[0].Err != nil {
		t.Fatalf("queued hand-overs %+v, want %s's", queued, id)
	}

	filter.block(false, txCalls...)
	start := time.Now()
	tw.start()
	t.Logf("penalty in the mempool %v after the restart began", c.waitInMempool(t, b.Penalty.TxHash(), start))
	alice.waitResponded(t, tw, b)
	if block, _ := c.mine(t); !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	tw.stop()
}

// TestLateAppointmentWakesChainMonitor polls bitcoind only once an hour: the penalty of a
// late appointment can then reach the mempool within the test only because the add wakes the
// chain monitor, which hands the queued appointment over at once.
func TestLateAppointmentWakesChainMonitor(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	b := node.NewBreach(t)
	c.send(t, b.Commitment)
	block, tip := c.mine(t)
	if !blockHas(block, b.Commitment) {
		t.Fatal("commitment not mined")
	}
	tw := newTower(t, node, "")
	tw.start("--pollinginterval", "1h") // catches up to tip at start, then sleeps
	alice := newUser(t)
	alice.register(t, tw)
	if r := alice.add(t, tw, breachAppointment(t, b)); r.StartBlock != tip {
		t.Fatalf("start_block %d, want %d", r.StartBlock, tip)
	}
	c.waitInMempool(t, b.Penalty.TxHash(), time.Now())
	alice.waitResponded(t, tw, b)
	tw.stop()
}
