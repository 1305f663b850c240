// Package btcdtest runs real btcd nodes for tests: regtest (or simnet) on free loopback ports,
// a miner key per node, and helpers to mine and to build a breach (commitment + penalty).
//
// It is a normal package so that end-to-end tests in several packages can share it, but only
// test code may import it. See docs/BTCD.md for the measured behaviour it relies on.
package btcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/rpcclient"

	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/freeport"
)

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	pollEvery    = 10 * time.Millisecond
)

// Option changes how Start runs the node.
type Option func(*options)

type options struct {
	simnet bool
	listen bool
	extra  []string
}

// Simnet runs the node on simnet instead of regtest. btcd wipes a regtest chain on every
// start, while a simnet chain survives Restart.
func Simnet() Option { return func(o *options) { o.simnet = true } }

// Listen makes the node accept P2P connections on a free loopback port (Node.P2PHost), for a
// second node to connect to, e.g. to build a reorg.
func Listen() Option { return func(o *options) { o.listen = true } }

// Args appends raw btcd flags, e.g. "--rejectnonstd", "--limitfreerelay=0".
func Args(args ...string) Option {
	return func(o *options) { o.extra = append(o.extra, args...) }
}

// Node is a running btcd process owned by one test.
type Node struct {
	RPCHost    string // 127.0.0.1:port, no TLS
	P2PHost    string // empty unless started with Listen
	User, Pass string
	DataDir    string
	Params     *chaincfg.Params
	MiningAddr btcutil.Address // P2PKH of MinerKey; every block's coinbase pays here
	MinerKey   *btcec.PrivateKey

	bin     string
	args    []string
	outPath string // btcd's stdout and stderr
	rpc     *rpcclient.Client

	mu      sync.Mutex // guards the process fields
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error

	breachMu     sync.Mutex // serialises NewBreach
	nextCoinbase uint32     // lowest height whose coinbase NewBreach has not used
}

// Start runs a fresh btcd and stops it when the test ends. It skips or fails the test when no
// btcd can be had (see Binary).
func Start(t testing.TB, opts ...Option) *Node {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin := Binary(t)

	params, netFlag := &chaincfg.RegressionNetParams, "--regtest"
	if o.simnet {
		params, netFlag = &chaincfg.SimNetParams, "--simnet"
	}
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatalf("btcdtest: miner key: %v", err)
	}
	addr, err := btcutil.NewAddressPubKeyHash(btcutil.Hash160(key.PubKey().SerializeCompressed()), params)
	if err != nil {
		t.Fatalf("btcdtest: miner address: %v", err)
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "empty.conf") // keeps btcd away from ~/.btcd/btcd.conf
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatalf("btcdtest: %v", err)
	}
	n := &Node{
		RPCHost:      freeLoopbackAddr(t),
		User:         "teos",
		Pass:         randomHex(t),
		DataDir:      filepath.Join(dir, "data"),
		Params:       params,
		MiningAddr:   addr,
		MinerKey:     key,
		bin:          bin,
		outPath:      filepath.Join(dir, "btcd.out"),
		nextCoinbase: 1,
	}
	n.args = []string{
		"--configfile=" + conf, netFlag,
		"--datadir=" + n.DataDir, "--logdir=" + filepath.Join(dir, "logs"),
		"--rpclisten=" + n.RPCHost, "--rpcuser=" + n.User, "--rpcpass=" + n.Pass, "--notls",
		"--txindex", "--utxocachemaxsize=8", "--nostalldetect",
		"--miningaddr=" + addr.EncodeAddress(),
	}
	if o.listen {
		n.P2PHost = freeLoopbackAddr(t)
		n.args = append(n.args, "--listen="+n.P2PHost)
	} else {
		n.args = append(n.args, "--nolisten")
	}
	n.args = append(n.args, o.extra...)

	n.rpc, err = rpcclient.New(&rpcclient.ConnConfig{
		Host: n.RPCHost, User: n.User, Pass: n.Pass, HTTPPostMode: true, DisableTLS: true,
	}, nil)
	if err != nil {
		t.Fatalf("btcdtest: rpcclient: %v", err)
	}
	// Cleanups run last-in first-out: stop the node, then the client, then remove dir.
	t.Cleanup(func() {
		n.rpc.Shutdown()
		n.rpc.WaitForShutdown()
	})
	t.Cleanup(func() { n.stop(t, syscall.SIGINT) })
	n.launch(t)
	return n
}

// Client returns a production client for the node, closed when the test ends.
func (n *Node) Client(t testing.TB) *bitcoind.Client {
	t.Helper()
	c, err := bitcoind.New(bitcoind.Config{Host: n.RPCHost, User: n.User, Pass: n.Pass, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("btcdtest: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// RPC returns an rpcclient for test-only calls (generate, invalidateblock, reconsiderblock,
// getrawmempool, node connect). rpcclient retries a refused connection for about 22 s, so
// don't use it on a node that is down.
func (n *Node) RPC(t testing.TB) *rpcclient.Client {
	t.Helper()
	c, err := rpcclient.New(&rpcclient.ConnConfig{
		Host: n.RPCHost, User: n.User, Pass: n.Pass, HTTPPostMode: true, DisableTLS: true,
	}, nil)
	if err != nil {
		t.Fatalf("btcdtest: rpcclient: %v", err)
	}
	t.Cleanup(func() {
		c.Shutdown()
		c.WaitForShutdown()
	})
	return c
}

// Generate mines count blocks to MiningAddr and returns their hashes, oldest first.
func (n *Node) Generate(t testing.TB, count uint32) []*chainhash.Hash {
	t.Helper()
	hashes, err := n.rpc.Generate(count)
	if err != nil {
		t.Fatalf("btcdtest: generate %d: %v", count, err)
	}
	if len(hashes) != int(count) {
		t.Fatalf("btcdtest: generate %d returned %d hashes", count, len(hashes))
	}
	return hashes
}

// Stop shuts the node down with SIGINT and waits for it. It is a no-op on a stopped node.
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	n.stop(t, syscall.SIGINT)
}

// Kill ends the node with SIGKILL, as a crash or an outage would.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	n.stop(t, syscall.SIGKILL)
}

// Restart stops the node if it runs and starts it again on the same ports and data dir. On
// regtest btcd starts a new chain, so the coinbases NewBreach tracks start over.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.stop(t, syscall.SIGINT)
	if n.Params.Net == chaincfg.RegressionNetParams.Net {
		n.breachMu.Lock()
		n.nextCoinbase = 1
		n.breachMu.Unlock()
	}
	n.launch(t)
}

func (n *Node) launch(t testing.TB) {
	t.Helper()
	out, err := os.OpenFile(n.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("btcdtest: %v", err)
	}
	cmd := exec.Command(n.bin, n.args...)
	cmd.Stdout, cmd.Stderr = out, out
	// SIGINT is btcd's clean shutdown, as in stop.
	DieWithParent(cmd, syscall.SIGINT)
	err = cmd.Start()
	out.Close() // the child keeps its own descriptor
	if err != nil {
		t.Fatalf("btcdtest: starting %s: %v", n.bin, err)
	}
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	if err := n.waitReady(exited); err != nil {
		n.stop(t, syscall.SIGKILL)
		t.Fatalf("btcdtest: btcd did not start: %v\n%s", err, n.outputTail())
	}
}

// waitReady polls the TCP port first: rpcclient's retry backoff would add about 500 ms.
func (n *Node) waitReady(exited <-chan struct{}) error {
	client, err := bitcoind.New(bitcoind.Config{Host: n.RPCHost, User: n.User, Pass: n.Pass, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	var lastErr error
	for {
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", n.RPCHost)
		if err == nil {
			conn.Close()
			if _, err = client.BestBlockHash(ctx); err == nil {
				return nil
			}
		}
		lastErr = err
		select {
		case <-exited:
			n.mu.Lock()
			defer n.mu.Unlock()
			return fmt.Errorf("btcd exited: %v", n.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w", startTimeout, lastErr)
		case <-ticker.C:
		}
	}
}

func (n *Node) stop(t testing.TB, sig os.Signal) {
	t.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("btcdtest: signalling btcd: %v", err)
	}
	select {
	case <-exited:
		return
	case <-time.After(stopTimeout):
	}
	t.Errorf("btcdtest: btcd ignored %v for %v; killing it\n%s", sig, stopTimeout, n.outputTail())
	_ = cmd.Process.Kill()
	<-exited
}

func (n *Node) outputTail() string {
	b, err := os.ReadFile(n.outPath)
	if err != nil {
		return fmt.Sprintf("(no btcd output: %v)", err)
	}
	const limit = 4000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return string(b)
}

// freeLoopbackAddr picks a free port (internal/freeport). Another process could take it before
// btcd binds it, which is unlikely enough for tests.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	p, err := freeport.Get()
	if err != nil {
		t.Fatalf("btcdtest: finding a free port: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

func randomHex(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("btcdtest: %v", err)
	}
	return hex.EncodeToString(b[:])
}
