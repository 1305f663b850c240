package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

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

	// The saved onion tower without --proxy: refused with the reason, nothing dialled.
	code, _, stderr = runCLI(t, false, "--datadir", dir, "get_subscription_info")
	if code != exitFailure || !strings.Contains(stderr, "SOCKS5 proxy") {
		t.Fatalf("onion without --proxy: exit %d, stderr %s", code, stderr)
	}
	if len(proxy.Requests()) != 1 {
		t.Fatal("a request went to the proxy without --proxy")
	}
}

func TestProxyFlagUsage(t *testing.T) {
	for _, p := range []string{"localhost", "127.0.0.1:", "socks5://127.0.0.1:9050"} {
		code, _, stderr := runCLI(t, false, "--datadir", t.TempDir(), "--proxy", p, "get_subscription_info")
		if code != exitUsage || !strings.Contains(stderr, "--proxy") {
			t.Fatalf("--proxy %q: exit %d, stderr %s", p, code, stderr)
		}
	}
}
