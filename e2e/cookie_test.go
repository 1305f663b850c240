package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
)

// cookieNode stands for bitcoind with cookie authentication: an HTTP layer in front of btcd
// that accepts only the current cookie's credentials (401 otherwise, as bitcoind) and
// forwards with btcd's own. restart changes the credentials and the cookie file together, as
// a bitcoind restart does.
type cookieNode struct {
	node    *btcdtest.Node
	cookie  string // the cookie file's path
	addr    string
	mu      sync.Mutex
	user    string
	pass    string
	refused atomic.Int64
	srv     *http.Server
}

func startCookieNode(t *testing.T, node *btcdtest.Node) *cookieNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cn := &cookieNode{node: node, cookie: filepath.Join(t.TempDir(), ".cookie"), addr: ln.Addr().String()}
	cn.srv = &http.Server{Handler: cn, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = cn.srv.Serve(ln) }()
	t.Cleanup(func() { _ = cn.srv.Close() })
	cn.setCredentials(t, "gen1")
	cn.writeCookie(t)
	return cn
}

// setCredentials changes what the node accepts (not the file).
func (cn *cookieNode) setCredentials(t *testing.T, generation string) {
	t.Helper()
	cn.mu.Lock()
	cn.user, cn.pass = "__cookie__", "secret-"+generation
	cn.mu.Unlock()
}

// writeCookie writes the accepted credentials to the cookie file, replacing it as bitcoind does.
func (cn *cookieNode) writeCookie(t *testing.T) {
	t.Helper()
	cn.mu.Lock()
	content := cn.user + ":" + cn.pass
	cn.mu.Unlock()
	tmp := cn.cookie + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cn.cookie); err != nil {
		t.Fatal(err)
	}
}

// restart is a bitcoind restart: new credentials, new cookie file.
func (cn *cookieNode) restart(t *testing.T, generation string) {
	t.Helper()
	cn.setCredentials(t, generation)
	cn.writeCookie(t)
}

func (cn *cookieNode) port() string {
	_, port, _ := net.SplitHostPort(cn.addr)
	return port
}

func (cn *cookieNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	cn.mu.Lock()
	allowed := ok && user == cn.user && pass == cn.pass
	cn.mu.Unlock()
	if !allowed {
		cn.refused.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="jsonrpc"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, "http://"+cn.node.RPCHost+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(cn.node.User, cn.node.Pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// TestCookieFollowsBitcoindRestart: teosd authenticates with btc_rpc_cookie. bitcoind
// "restarts" (new cookie, new credentials) and the tower keeps following the chain without
// a restart of its own. While the file lags behind the node's credentials, the tower logs the
// refusal as an authentication failure, counts it in the metrics, holds requests, and recovers
// as soon as the file is right.
func TestCookieFollowsBitcoindRestart(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	cn := startCookieNode(t, node)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	var args []string // drop the user/password pair: cookie auth only
	for i := 0; i < len(tw.args); i++ {
		if tw.args[i] == "--btcrpcuser" || tw.args[i] == "--btcrpcpassword" {
			i++
			continue
		}
		args = append(args, tw.args[i])
	}
	tw.args = append(args, "--btcrpccookie", cn.cookie, "--btcrpcport", cn.port())
	tw.start()
	alice := newUser(t)
	alice.register(t, tw)

	// A restart as bitcoind does it: the tower reads the new cookie on the first 401.
	cn.restart(t, "gen2")
	_, tip := c.mine(t)
	waitTowerAt(t, tw, tip)
	if !strings.Contains(tw.logs(), "credentials re-read") {
		t.Error("no log of the cookie being re-read")
	}
	if n := scrapeMetrics(t, metricsURL).value(t, "teos_bitcoind_auth_failures_total"); n != 0 {
		t.Errorf("auth failures counted for a cookie that was re-read successfully: %v", n)
	}

	// The node's credentials change but the file lags: an authentication failure.
	cn.setCredentials(t, "gen3")
	waitFor(t, "an authentication failure in the metrics", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_bitcoind_auth_failures_total") > 0
	})
	if !strings.Contains(tw.logs(), "REFUSED THE RPC CREDENTIALS") {
		t.Errorf("authentication failure not logged as such:\n%s", tw.logs())
	}
	added := make(chan addResp, 1)
	a := randomAppointment(t, 100)
	go func() { added <- alice.add(t, tw, a) }() // held while the tower is blind
	_, tip = c.mine(t)
	time.Sleep(500 * time.Millisecond) // several polls, all refused
	if h := uint32(scrapeMetrics(t, metricsURL).value(t, "teos_chain_height")); h >= tip {
		t.Fatalf("tower at %d followed the chain to %d with refused credentials", h, tip)
	}
	cn.writeCookie(t)
	waitTowerAt(t, tw, tip)
	if r := <-added; r.StartBlock == 0 {
		t.Errorf("held add_appointment: %+v", r)
	}
	t.Logf("node refused %d calls in all; tower log has %d authentication-failure lines",
		cn.refused.Load(), strings.Count(tw.logs(), "REFUSED THE RPC CREDENTIALS"))
	tw.stop()
}
