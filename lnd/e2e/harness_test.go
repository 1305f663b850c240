// Package e2e runs the lnd-enabled teosd against real lnd nodes on a real btcd regtest chain.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/freeport"
)

var (
	repo     string // the repository root
	teosdBin string // the lnd-enabled teosd, built by TestMain
	binDir   string // where TestMain builds (removed at the end)
	lndBin   string
	lncliBin string
)

func TestMain(m *testing.M) {
	code, err := testMain(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func testMain(m *testing.M) (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return 0, err
	}
	repo = filepath.Clean(filepath.Join(wd, "..", ".."))
	// btcdtest looks for .bin next to the nearest go.mod, which is lnd/'s here.
	if os.Getenv("BTCD") == "" {
		if err := run(repo, "sh", "scripts/install-btcd.sh"); err != nil {
			return 0, err
		}
		os.Setenv("BTCD", filepath.Join(repo, ".bin", "btcd"))
	}
	lndBin, lncliBin = filepath.Join(repo, ".bin", "lnd"), filepath.Join(repo, ".bin", "lncli")
	if !executable(lndBin) || !executable(lncliBin) {
		lndBin = ""
	}
	dir, err := os.MkdirTemp("", "teosd-lnd-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	teosdBin = filepath.Join(dir, "teosd")
	binDir = dir
	// Under -race, teosd is built with it too: the races worth finding are in the daemon
	// (startTeosd fails a test whose teosd reported one).
	build := []string{"build", "-o", teosdBin}
	if raceEnabled {
		build = append(build, "-race")
	}
	if err := run(filepath.Join(repo, "lnd"), "go", append(build, "./cmd/teosd")...); err != nil {
		return 0, fmt.Errorf("build lnd-enabled teosd: %w", err)
	}
	return m.Run(), nil
}

func run(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// requireLnd skips the test when scripts/install-lnd.sh has not been run, unless lnd is
// required (CI or TEOS_REQUIRE_LND=1): then it fails.
func requireLnd(t testing.TB) {
	t.Helper()
	if lndBin != "" {
		return
	}
	if os.Getenv("CI") != "" || os.Getenv("TEOS_REQUIRE_LND") == "1" {
		t.Fatalf("no lnd in %s/.bin: run scripts/install-lnd.sh", repo)
	}
	t.Skipf("no lnd in %s/.bin (run scripts/install-lnd.sh; CI or TEOS_REQUIRE_LND=1 makes this a failure)", repo)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	// Outside the kernel's source-port range: an lnd node restarted mid-test must find its
	// ports free (internal/freeport).
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

// proc is a child process owned by a test, stopped by pid when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startProc runs name with args; stdout lines go to onLine as well as to the log.
func startProc(t testing.TB, label, name string, args []string, onLine func(string)) *proc {
	t.Helper()
	p := &proc{name: label, done: make(chan struct{})}
	cmd := exec.Command(name, args...)
	cmd.Stderr = p
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	btcdtest.DieWithParent(cmd, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", label, err)
	}
	p.cmd = cmd
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			p.Write(append(sc.Bytes(), '\n'))
			if onLine != nil {
				onLine(sc.Text())
			}
		}
	}()
	go func() {
		<-lines
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			tail := p.logs()
			if len(tail) > 20000 {
				tail = tail[len(tail)-20000:]
			}
			t.Logf("%s output (tail):\n%s", label, tail)
		}
	})
	return p
}

// stop sends SIGTERM to the process (by its pid) and waits, killing it after 30 s.
func (p *proc) stop(t testing.TB) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s ignored SIGTERM for 30 s; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitFor polls cond every 200 ms until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tlsProxy terminates TLS for lnd (which talks to btcd only over TLS) in front of the test
// btcd, which serves plain RPC for teosd. It returns its address and the certificate file.
func tlsProxy(t testing.TB, backend string) (addr, certPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "btcd test proxy"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPath = filepath.Join(t.TempDir(), "rpc.cert")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	var connsMu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			connsMu.Lock()
			conns = append(conns, c, b)
			connsMu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(b, c); b.Close() }()
			go func() { defer wg.Done(); io.Copy(c, b); c.Close() }()
		}
	}()
	return l.Addr().String(), certPath
}

// fund sends amount from one of the miner's mature coinbases to addr, in a transaction it
// broadcasts (unconfirmed). It uses coinbases from height `from` on, one per call.
type funder struct {
	node *btcdtest.Node
	next int64
}

func (f *funder) send(t testing.TB, addr btcutil.Address, amount btcutil.Amount) *chainhash.Hash {
	t.Helper()
	rpc := f.node.RPC(t)
	minerScript, err := txscript.PayToAddrScript(f.node.MiningAddr)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := rpc.GetBlockHash(f.next)
	if err != nil {
		t.Fatalf("getblockhash %d: %v", f.next, err)
	}
	f.next++
	block, err := rpc.GetBlock(hash)
	if err != nil {
		t.Fatal(err)
	}
	cb := block.Transactions[0]
	vout := -1
	for i, o := range cb.TxOut {
		if bytes.Equal(o.PkScript, minerScript) {
			vout = i
		}
	}
	if vout < 0 {
		t.Fatalf("coinbase at %d does not pay the miner", f.next-1)
	}
	prev := cb.TxOut[vout]
	pkScript, err := txscript.PayToAddrScript(addr)
	if err != nil {
		t.Fatal(err)
	}
	const fee = 10_000
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(&wire.OutPoint{Hash: cb.TxHash(), Index: uint32(vout)}, nil, nil))
	tx.AddTxOut(wire.NewTxOut(int64(amount), pkScript))
	if change := prev.Value - int64(amount) - fee; change > 0 {
		tx.AddTxOut(wire.NewTxOut(change, minerScript))
	}
	sig, err := txscript.SignatureScript(tx, 0, prev.PkScript, txscript.SigHashAll, f.node.MinerKey, true)
	if err != nil {
		t.Fatal(err)
	}
	tx.TxIn[0].SignatureScript = sig
	txid, err := rpc.SendRawTransaction(tx, true)
	if err != nil {
		t.Fatalf("send funding: %v", err)
	}
	return txid
}

// lncliJSON runs lncli against node and decodes its JSON output into out (if not nil).
func lncliJSON(t testing.TB, n *lndNode, out any, args ...string) error {
	t.Helper()
	base := []string{"--lnddir=" + n.dir, "--rpcserver=" + n.rpc, "--network=regtest", "--no-macaroons"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, lncliBin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("lncli %s: %v: %s%s", strings.Join(args, " "), err, stderr.Bytes(), stdout.Bytes())
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("lncli %s: %v: %s", args[0], err, stdout.Bytes())
	}
	return nil
}

func lncli(t testing.TB, n *lndNode, out any, args ...string) {
	t.Helper()
	if err := lncliJSON(t, n, out, args...); err != nil {
		t.Fatal(err)
	}
}

// lndNode is an lnd process on the test chain, loopback only.
type lndNode struct {
	name   string
	dir    string
	rpc    string
	p2p    string
	args   []string
	p      *proc
	pubkey string
}

func newLnd(t testing.TB, name, btcdTLS, certPath string, node *btcdtest.Node, extra ...string) *lndNode {
	t.Helper()
	n := &lndNode{name: name, dir: t.TempDir(), rpc: freeAddr(t), p2p: freeAddr(t)}
	n.args = append([]string{
		"--lnddir=" + n.dir, "--noseedbackup", "--no-macaroons", "--nobootstrap", "--norest",
		"--listen=" + n.p2p, "--rpclisten=" + n.rpc, "--externalip=" + n.p2p,
		"--bitcoin.regtest", "--bitcoin.node=btcd",
		"--btcd.rpchost=" + btcdTLS, "--btcd.rpcuser=" + node.User, "--btcd.rpcpass=" + node.Pass,
		"--btcd.rpccert=" + certPath,
		"--bitcoin.defaultchanconfs=1", "--trickledelay=50", "--debuglevel=info",
		"--alias=" + name, "--accept-keysend",
	}, extra...)
	return n
}

// start runs lnd and waits until its RPC answers and it is synced to the chain.
func (n *lndNode) start(t testing.TB) {
	t.Helper()
	startAll(t, n)
}

// startAll starts the nodes together, then waits for each: their start-ups overlap.
func startAll(t testing.TB, nodes ...*lndNode) {
	t.Helper()
	for _, n := range nodes {
		n.p = startProc(t, "lnd "+n.name, lndBin, n.args, nil)
	}
	for _, n := range nodes {
		n.waitSynced(t)
	}
}

func (n *lndNode) waitSynced(t testing.TB) {
	t.Helper()
	var info struct {
		IdentityPubkey string `json:"identity_pubkey"`
		SyncedToChain  bool   `json:"synced_to_chain"`
	}
	waitFor(t, 120*time.Second, n.name+" lnd synced", func() (bool, error) {
		if n.p.exited() {
			t.Fatalf("lnd %s exited: %v", n.name, n.p.err)
		}
		if err := lncliJSON(t, n, &info, "getinfo"); err != nil {
			return false, err
		}
		return info.SyncedToChain, nil
	})
	n.pubkey = info.IdentityPubkey
}

func (n *lndNode) stop(t testing.TB) {
	t.Helper()
	n.p.stop(t)
}

func (n *lndNode) newAddress(t testing.TB, node *btcdtest.Node) btcutil.Address {
	t.Helper()
	var r struct {
		Address string `json:"address"`
	}
	lncli(t, n, &r, "newaddress", "p2wkh")
	a, err := btcutil.DecodeAddress(r.Address, node.Params)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (n *lndNode) channelDB() string {
	return filepath.Join(n.dir, "data", "graph", "regtest", "channel.db")
}
