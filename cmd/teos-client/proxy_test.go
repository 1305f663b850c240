package main

import (
	"encoding/json"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/socks5test"
	"github.com/teos-go/teos/pkg/teos"
)

const testOnion = "fgwlvykbxtfpbmrodkkngtily43b4utnbp7bfsexss6jgiuwnxluewad.onion"

func TestRegisterThroughProxy(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	srv := fakeTower(t, key)
	proxy := socks5test.Start(t, socks5test.Map(testOnion, 9814, srv.Listener.Addr().String()))
	dir := t.TempDir()

	code, stdout, stderr := runCLI(t, false, "--datadir", dir, "--tower", "http://"+testOnion+":9814",
		"--towerid", towerID, "--proxy", proxy.Addr, "register")
	if code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	var reg map[string]any
	if err := json.Unmarshal([]byte(stdout), &reg); err != nil || reg["tower_id"] != towerID {
		t.Fatalf("register output %s (%v)", stdout, err)
	}
	reqs := proxy.Requests()
	if len(reqs) != 1 || reqs[0].AddrType != 3 || reqs[0].HostPort() != testOnion+":9814" {
		t.Fatalf("proxy saw %+v, want one CONNECT to the name %s:9814", reqs, testOnion)
	}

	if got := savedProxy(t, dir); got != proxy.Addr {
		t.Fatalf("register saved proxy %q, want %q", got, proxy.Addr)
	}
}

func TestProxyFlagUsage(t *testing.T) {
	for _, p := range []string{"localhost", "127.0.0.1:", "socks5://127.0.0.1:9050", "None", "none:"} {
		dir := filepath.Join(t.TempDir(), "c")
		code, _, stderr := runCLI(t, false, "--datadir", dir, "--proxy", p, "register")
		if code != exitUsage || !strings.Contains(stderr, "--proxy") || !strings.Contains(stderr, "host:port, or none") {
			t.Fatalf("--proxy %q: exit %d, stderr %s", p, code, stderr)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("--proxy %q: the refused command created the data dir (%v)", p, err)
		}
	}
}

// savedProxy is the proxy tower.json in dir holds ("" for none).
func savedProxy(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, towerFile))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Proxy *string `json:"proxy"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Proxy == nil {
		return ""
	}
	if *s.Proxy == "" {
		t.Fatalf("tower.json holds an empty proxy: %s", raw)
	}
	return *s.Proxy
}

// dirFiles is every file in dir with its content, to check a command wrote nothing.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// addOne runs add_appointment for one appointment n with extra global flags.
func addOne(t *testing.T, dir string, n int, flags ...string) (int, string) {
	t.Helper()
	txid := chainhash.DoubleHashH([]byte{byte(n)})
	args := append(append([]string{"--datadir", dir}, flags...),
		"add_appointment", "--commitment-txid", txid.String(), "--penalty", penaltyHex(t, n))
	code, _, stderr := runCLI(t, false, args...)
	return code, stderr
}

// TestSavedProxy: the proxy register used is saved with the onion tower and used by later
// commands without --proxy; a --proxy that the tower answered through replaces it, one that
// did not work is not saved; --proxy none makes the onion tower refused again, without a
// dial and without writing anything.
func TestSavedProxy(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	srv := fakeTower(t, key)
	route := socks5test.Map(testOnion, 9814, srv.Listener.Addr().String())
	p1, p2 := socks5test.Start(t, route), socks5test.Start(t, route)
	dir := t.TempDir()

	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", "http://"+testOnion+":9814/",
		"--towerid", towerID, "--proxy", p1.Addr, "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	if got := savedProxy(t, dir); got != p1.Addr {
		t.Fatalf("saved proxy %q, want %q", got, p1.Addr)
	}

	// No --proxy: the saved one carries the request (with or without --tower spelled again).
	if code, stderr := addOne(t, dir, 1); code != 0 {
		t.Fatalf("add_appointment through the saved proxy: %d %s", code, stderr)
	}
	if code, stderr := addOne(t, dir, 2, "--tower", testOnion+":9814"); code != 0 {
		t.Fatalf("add_appointment with --tower through the saved proxy: %d %s", code, stderr)
	}
	if reqs := p1.Requests(); len(reqs) != 3 || reqs[2].HostPort() != testOnion+":9814" {
		t.Fatalf("saved proxy saw %+v, want 3 CONNECTs to the onion", reqs)
	}

	// --proxy overrides the saved one for this run and, the tower having answered, is saved.
	if code, stderr := addOne(t, dir, 3, "--proxy", p2.Addr); code != 0 {
		t.Fatalf("add_appointment --proxy p2: %d %s", code, stderr)
	}
	if len(p1.Requests()) != 3 || len(p2.Requests()) != 1 {
		t.Fatalf("override: p1 saw %d, p2 %d CONNECTs, want 3 and 1", len(p1.Requests()), len(p2.Requests()))
	}
	if got := savedProxy(t, dir); got != p2.Addr {
		t.Fatalf("saved proxy after override %q, want %q", got, p2.Addr)
	}
	if code, stderr := addOne(t, dir, 4); code != 0 || len(p2.Requests()) != 2 || len(p1.Requests()) != 3 {
		t.Fatalf("after override: exit %d %s; p1 %d, p2 %d CONNECTs", code, stderr, len(p1.Requests()), len(p2.Requests()))
	}

	// A proxy that is not there: the command is not done (try again) and the saved proxy stays.
	dead := socks5test.Start(t, route)
	dead.Close()
	before := dirFiles(t, dir)
	if code, _ := addOne(t, dir, 5, "--proxy", dead.Addr); code != exitTryAgain {
		t.Fatalf("dead proxy: exit %d", code)
	}
	if after := dirFiles(t, dir); !maps.Equal(before, after) {
		t.Fatalf("a failed command through another proxy changed the data dir:\n%v\n%v", before, after)
	}

	// none: the onion tower is refused with the one-line reason, nothing dialled or written.
	code, stderr := addOne(t, dir, 6, "--proxy", "none")
	if code != exitFailure || !strings.Contains(stderr, "SOCKS5 proxy") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("onion with --proxy none: exit %d, stderr %q", code, stderr)
	}
	if len(p1.Requests()) != 3 || len(p2.Requests()) != 2 {
		t.Fatal("a request went to a proxy with --proxy none")
	}
	if after := dirFiles(t, dir); !maps.Equal(before, after) {
		t.Fatal("a refused command changed the data dir")
	}
}

// TestProxyNoneClearnet: a clearnet tower registered through a proxy; --proxy none reaches it
// directly and removes the saved proxy, so later commands go direct too.
func TestProxyNoneClearnet(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	srv := fakeTower(t, key)
	p := socks5test.Start(t, func(h string, port int) (string, byte) {
		return net.JoinHostPort(h, strconv.Itoa(port)), socks5test.ReplySucceeded
	})
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", srv.URL, "--towerid", towerID,
		"--proxy", p.Addr, "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	if code, stderr := addOne(t, dir, 1); code != 0 || len(p.Requests()) != 2 {
		t.Fatalf("through the saved proxy: exit %d %s, %d CONNECTs", code, stderr, len(p.Requests()))
	}
	if code, stderr := addOne(t, dir, 2, "--proxy", "none"); code != 0 || len(p.Requests()) != 2 {
		t.Fatalf("--proxy none: exit %d %s, %d CONNECTs (want none more)", code, stderr, len(p.Requests()))
	}
	if got := savedProxy(t, dir); got != "" {
		t.Fatalf("saved proxy %q after --proxy none, want none", got)
	}
	if code, stderr := addOne(t, dir, 3); code != 0 || len(p.Requests()) != 2 {
		t.Fatalf("after none: exit %d %s, %d CONNECTs", code, stderr, len(p.Requests()))
	}
}

// TestOldTowerFile: tower.json as written before the proxy was saved (no "proxy") loads: a
// clearnet tower works as before; an onion tower is refused without --proxy as before, and
// works with it, which saves it.
func TestOldTowerFile(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	srv := fakeTower(t, key)
	old := func(url string) string {
		dir := t.TempDir()
		if _, err := loadOrCreateKey(dir); err != nil {
			t.Fatal(err)
		}
		body := `{
  "url": "` + url + `",
  "tower_id": "` + towerID + `",
  "registration": {
    "available_slots": 10,
    "subscription_start": 1,
    "subscription_expiry": 100
  }
}
`
		if err := os.WriteFile(filepath.Join(dir, towerFile), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	clear := old(srv.URL)
	if code, stderr := addOne(t, clear, 1); code != 0 {
		t.Fatalf("old clearnet file: %d %s", code, stderr)
	}

	onion := old("http://" + testOnion + ":9814")
	before := dirFiles(t, onion)
	code, stderr := addOne(t, onion, 1)
	if code != exitFailure || !strings.Contains(stderr, "SOCKS5 proxy") {
		t.Fatalf("old onion file without --proxy: exit %d, stderr %s", code, stderr)
	}
	if after := dirFiles(t, onion); !maps.Equal(before, after) {
		t.Fatal("a refused command changed the data dir")
	}
	p := socks5test.Start(t, socks5test.Map(testOnion, 9814, srv.Listener.Addr().String()))
	if code, stderr := addOne(t, onion, 2, "--proxy", p.Addr); code != 0 || len(p.Requests()) != 1 {
		t.Fatalf("old onion file with --proxy: exit %d %s, %d CONNECTs", code, stderr, len(p.Requests()))
	}
	if got := savedProxy(t, onion); got != p.Addr {
		t.Fatalf("saved proxy %q, want %q", got, p.Addr)
	}
	if code, stderr := addOne(t, onion, 3); code != 0 || len(p.Requests()) != 2 {
		t.Fatalf("then without --proxy: exit %d %s, %d CONNECTs", code, stderr, len(p.Requests()))
	}
}

// A saved proxy that is not host:port (an edited file) is a one-line error, not a dial.
func TestBadSavedProxy(t *testing.T) {
	dir := t.TempDir()
	if _, err := loadOrCreateKey(dir); err != nil {
		t.Fatal(err)
	}
	body := `{"url": "http://` + testOnion + `:9814", "tower_id": "` + strings.Repeat("02", 1) + strings.Repeat("ab", 32) + `", "proxy": "localhost"}`
	if err := os.WriteFile(filepath.Join(dir, towerFile), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, false, "--datadir", dir, "get_subscription_info")
	if code != exitFailure || !strings.Contains(stderr, "proxy") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("bad saved proxy: exit %d, stderr %q", code, stderr)
	}
}

// TestBadSavedProxyReplaced: a --proxy that works replaces a broken saved one (the saved one
// is checked only when it would be used).
func TestBadSavedProxyReplaced(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	srv := fakeTower(t, key)
	proxy := socks5test.Start(t, socks5test.Map(testOnion, 9814, srv.Listener.Addr().String()))
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", "http://"+testOnion+":9814",
		"--towerid", towerID, "--proxy", proxy.Addr, "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	path := filepath.Join(dir, towerFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(raw), proxy.Addr, "localhost", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stderr := addOne(t, dir, 1, "--proxy", proxy.Addr); code != 0 {
		t.Fatalf("add_appointment --proxy over a broken saved proxy: %d %s", code, stderr)
	}
	if got := savedProxy(t, dir); got != proxy.Addr {
		t.Fatalf("saved proxy %q, want it replaced by %q", got, proxy.Addr)
	}
}

// TestProxySavedOnlyOnceReached: a command that made no request (or got no answer) through
// --proxy leaves the saved proxy as it was; once a response came back, it is saved.
func TestProxySavedOnlyOnceReached(t *testing.T) {
	dir := t.TempDir()
	url := "http://" + testOnion + ":9814"
	if err := saveTower(dir, &savedTower{URL: url, TowerID: strings.Repeat("ab", 33), Proxy: "127.0.0.1:9050"}); err != nil {
		t.Fatal(err)
	}
	a := &app{proxy: proxyNone, dir: dir, connected: url}
	if err := a.rememberProxy(); err != nil {
		t.Fatal(err)
	}
	if got := savedProxy(t, dir); got != "127.0.0.1:9050" {
		t.Fatalf("no response seen, but the saved proxy became %q", got)
	}
	a.reached.Store(true)
	if err := a.rememberProxy(); err != nil {
		t.Fatal(err)
	}
	if got := savedProxy(t, dir); got != "" {
		t.Fatalf("after a response, --proxy none left %q saved", got)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*"+towerFile+".tmp*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}
