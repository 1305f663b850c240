package e2e

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/rpcclient"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// penaltyDeadline bounds how long after the dispute's block the penalty may take to reach
// the mempool. The tower polls every 100 ms, so two intervals would do; the slack is for a
// loaded CI machine running teosd under -race.
const penaltyDeadline = 5 * time.Second

// chain is the test's own view of a btcd node, independent of the production client.
type chain struct {
	node *btcdtest.Node
	rpc  *rpcclient.Client
	btc  *bitcoind.Client
}

func newChain(t testing.TB, node *btcdtest.Node) *chain {
	t.Helper()
	return &chain{node: node, rpc: node.RPC(t), btc: node.Client(t)}
}

func (c *chain) tip(t testing.TB) uint32 {
	t.Helper()
	h, err := c.rpc.GetBlockCount()
	if err != nil {
		t.Fatalf("getblockcount: %v", err)
	}
	return uint32(h)
}

// send broadcasts tx and fails the test if btcd refuses it.
func (c *chain) send(t testing.TB, tx *wire.MsgTx) {
	t.Helper()
	if _, err := c.btc.SendRawTransaction(t.Context(), tx); err != nil {
		t.Fatalf("broadcast %s: %v", tx.TxHash(), err)
	}
}

// mine mines one block and returns it with its height.
func (c *chain) mine(t testing.TB) (*wire.MsgBlock, uint32) {
	t.Helper()
	hash := c.node.Generate(t, 1)[0]
	block, err := c.rpc.GetBlock(hash)
	if err != nil {
		t.Fatalf("getblock %s: %v", hash, err)
	}
	return block, c.tip(t)
}

func (c *chain) inMempool(t testing.TB, txid chainhash.Hash) bool {
	t.Helper()
	pool, err := c.rpc.GetRawMempool()
	if err != nil {
		t.Fatalf("getrawmempool: %v", err)
	}
	for _, h := range pool {
		if *h == txid {
			return true
		}
	}
	return false
}

// waitInMempool polls the mempool finely (the latency is measured) and returns how long after
// since txid appeared.
func (c *chain) waitInMempool(t testing.TB, txid chainhash.Hash, since time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !c.inMempool(t, txid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the mempool", txid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(since)
}

// confirmation returns the height and hash of the main-chain block holding txid; ok is false
// while it is unconfirmed.
func (c *chain) confirmation(t testing.TB, txid chainhash.Hash) (height uint32, block chainhash.Hash, ok bool) {
	t.Helper()
	tx, err := c.rpc.GetRawTransactionVerbose(&txid)
	if err != nil {
		t.Fatalf("getrawtransaction %s: %v", txid, err)
	}
	if tx.BlockHash == "" {
		return 0, block, false
	}
	hash, err := chainhash.NewHashFromStr(tx.BlockHash)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := c.rpc.GetBlockHeaderVerbose(hash)
	if err != nil {
		t.Fatalf("getblockheader %s: %v", hash, err)
	}
	return uint32(hdr.Height), *hash, true
}

func blockHas(block *wire.MsgBlock, txs ...*wire.MsgTx) bool {
	in := make(map[chainhash.Hash]bool, len(block.Transactions))
	for _, tx := range block.Transactions {
		in[tx.TxHash()] = true
	}
	for _, tx := range txs {
		if !in[tx.TxHash()] {
			return false
		}
	}
	return true
}

func txBytes(t testing.TB, tx *wire.MsgTx) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tx.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// breachAppointment is what a client sends for b: the dispute's locator and the penalty
// encrypted under the dispute's txid.
func breachAppointment(t testing.TB, b *btcdtest.Breach) teos.Appointment {
	t.Helper()
	txid := b.Commitment.TxHash()
	return teos.Appointment{
		Locator:       teos.NewLocator(txid),
		EncryptedBlob: wtcrypto.Encrypt(txBytes(t, b.Penalty), txid),
		ToSelfDelay:   btcdtest.ToSelfDelay,
	}
}

func locatorOf(b *btcdtest.Breach) teos.Locator { return teos.NewLocator(b.Commitment.TxHash()) }

// towerHeight is the tower's current height, read from a throwaway user's subscription_start.
// It moves at the start of a block's processing (the gatekeeper goes first), so when it reads
// h the watcher and responder are done with h-1.
func towerHeight(t testing.TB, tw *tower) uint32 {
	t.Helper()
	return newUser(t).register(t, tw).SubscriptionStart
}

func waitTowerAt(t testing.TB, tw *tower, h uint32) {
	t.Helper()
	waitFor(t, fmt.Sprintf("tower at height %d", h), func() bool { return towerHeight(t, tw) == h })
}

// wantResponded checks get_appointment answers dispute_responded with b's transactions.
func (u *user) wantResponded(t testing.TB, tw *tower, b *btcdtest.Breach) {
	t.Helper()
	code, got := u.get(t, tw, locatorOf(b))
	appt, _ := got["appointment"].(map[string]any)
	if code != 200 || got["status"] != "dispute_responded" || appt == nil {
		t.Fatalf("get_appointment: %d %v, want dispute_responded", code, got)
	}
	want := map[string]string{
		"dispute_txid":  b.Commitment.TxHash().String(), // chainhash prints display order
		"penalty_txid":  b.Penalty.TxHash().String(),
		"penalty_rawtx": hex.EncodeToString(txBytes(t, b.Penalty)),
	}
	for k, v := range want {
		if appt[k] != v {
			t.Fatalf("get_appointment %s = %v, want %s", k, appt[k], v)
		}
	}
	if len(appt) != len(want) {
		t.Fatalf("get_appointment fields %v", appt)
	}
}

// waitResponded waits for b's appointment to become a tracker, then checks it. The penalty
// reaches the mempool a moment before its tracker is stored.
func (u *user) waitResponded(t testing.TB, tw *tower, b *btcdtest.Breach) {
	t.Helper()
	waitFor(t, "dispute_responded", func() bool {
		_, got := u.get(t, tw, locatorOf(b))
		return got["status"] == "dispute_responded"
	})
	u.wantResponded(t, tw, b)
}

func (u *user) isGone(t testing.TB, tw *tower, loc teos.Locator) bool {
	t.Helper()
	code, got := u.get(t, tw, loc)
	return code == 404 && got["error"] == "Appointment not found" && got["error_code"] == float64(36)
}

func (u *user) waitGone(t testing.TB, tw *tower, loc teos.Locator) {
	t.Helper()
	waitFor(t, fmt.Sprintf("appointment %s deleted", loc), func() bool { return u.isGone(t, tw, loc) })
}

// wantSubscription checks the user's available slots and exactly which locators they hold.
func (u *user) wantSubscription(t testing.TB, tw *tower, slots uint32, locs ...teos.Locator) {
	t.Helper()
	sub := u.subscriptionOK(t, tw)
	if sub.AvailableSlots != slots {
		t.Fatalf("available_slots %d, want %d", sub.AvailableSlots, slots)
	}
	if len(sub.Locators) != len(locs) {
		t.Fatalf("locators %v, want %v", sub.Locators, locs)
	}
	for _, l := range locs {
		if !contains(sub.Locators, l.String()) {
			t.Fatalf("locators %v lack %s", sub.Locators, l)
		}
	}
}

// alive fails the test if teosd has exited.
func (tw *tower) alive() {
	tw.t.Helper()
	select {
	case <-tw.done:
		tw.t.Fatalf("teosd exited: %v\n%s", tw.exitErr(), tw.logs())
	default:
	}
}

// linkProxy forwards TCP connections to target. down makes target unreachable through it
// (new connections refused, open ones cut), as a dead node would be, while the node itself
// and its chain live on; up restores the link on the same address.
type linkProxy struct {
	addr   string
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	ln    net.Listener // nil while down
	conns map[net.Conn]struct{}
}

func startProxy(t testing.TB, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{addr: ln.Addr().String(), target: target, conns: make(map[net.Conn]struct{})}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *linkProxy) port() string {
	_, port, _ := net.SplitHostPort(p.addr)
	return port
}

func (p *linkProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
}

func (p *linkProxy) pipe(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down while dialling
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var copies sync.WaitGroup
	for _, dir := range [][2]net.Conn{{client, server}, {server, client}} {
		copies.Go(func() {
			_, _ = io.Copy(dir[0], dir[1])
			dir[0].Close()
			dir[1].Close()
		})
	}
	copies.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

func (p *linkProxy) down() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *linkProxy) up(t testing.TB) {
	t.Helper()
	var err error
	for range 100 { // the port is ours unless another process grabbed it meanwhile
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("proxy cannot listen on %s again: %v", p.addr, err)
}
