package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
)

var refusedRe = regexp.MustCompile(`msg="lnd session refused: stored bytes at the cap".* session=([0-9a-f]{66}) stored_bytes=\d+ max_stored_bytes=1`)

// TestLndSessionRefusedAtStorageCap: a real lnd client against a teosd whose store is over
// max_stored_bytes. Its CreateSession is refused (code 40) with one warn line each, nothing is
// stored, and the client backs off and asks again with the same session key later, rather
// than giving the tower up or looping on fresh keys.
func TestLndSessionRefusedAtStorageCap(t *testing.T) {
	requireLnd(t)
	node := btcdtest.Start(t)
	node.Generate(t, 110)
	tw := startTeosd(t, node, "max_stored_bytes = 1\n")
	proxy, cert := tlsProxy(t, node.RPCHost)
	alice := newLnd(t, "alice", proxy, cert, node, "--wtclient.active")
	alice.start(t)
	began := time.Now()
	lncli(t, alice, nil, "wtclient", "add", tw.id+"@"+tw.lndAddr)

	var retried string
	waitFor(t, 3*time.Minute, "the same session refused twice", func() (bool, error) {
		seen := map[string]int{}
		for _, m := range refusedRe.FindAllStringSubmatch(tw.p.logs(), -1) {
			if seen[m[1]]++; seen[m[1]] == 2 {
				retried = m[1]
				return true, nil
			}
		}
		return false, nil
	})
	t.Logf("session %s refused twice within %v", retried, time.Since(began))
	// The operator sees the refusals, under their reason, on the metrics endpoint.
	waitFor(t, 10*time.Second, "the refusals counted", func() (bool, error) {
		n := tw.metric(t, `teos_lnd_sessions_refused_total{reason="max_stored_bytes"}`)
		return n >= 2, fmt.Errorf("%v refused", n)
	})
	if n, logged := tw.metric(t, `teos_lnd_sessions_refused_total{reason="max_stored_bytes"}`), len(refusedRe.FindAllString(tw.p.logs(), -1)); n > float64(logged) {
		t.Fatalf("%v refusals counted, %d logged", n, logged)
	}
	if a, h := tw.metric(t, "teos_lnd_sessions_accepted_total"), tw.metric(t, `teos_lnd_handshakes_total{outcome="completed"}`); a != 0 || h < 2 {
		t.Fatalf("%v sessions accepted at the cap, %v handshakes completed", a, h)
	}
	if s, u, _ := tw.lndFrontEnd(t); s != 0 || u != 0 {
		t.Fatalf("stored at the cap: %d sessions, %d updates", s, u)
	}
	var towers struct {
		Towers []struct {
			Pubkey string `json:"pubkey"`
		} `json:"towers"`
	}
	lncli(t, alice, &towers, "wtclient", "towers")
	found := false
	for _, tower := range towers.Towers {
		found = found || strings.EqualFold(tower.Pubkey, tw.id)
	}
	if !found {
		t.Fatalf("lnd dropped the tower after the refusals: %+v", towers)
	}
}
