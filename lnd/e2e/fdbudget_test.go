package e2e

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/keychain"

	"github.com/teos-go/teos/internal/btcdtest"
)

// TestLndPortFitsOpenFiles: teosd under an open files limit of 276 (prlimit) has 20
// descriptors for connections beside its reserve of 256, and both ports ask for more than
// half (api_max_connections 8192, lnd_tower_max_connections 1024): each gets 10, with a warn
// line each. The lnd port then holds 10 connections and stops accepting, as its metrics show;
// the next client's handshake goes on once one closes. Before, the lnd port kept its 1024
// beside the public API's 20.
func TestLndPortFitsOpenFiles(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("no prlimit (util-linux)")
	}
	node := btcdtest.Start(t)
	node.Generate(t, 110)
	tw := startTeosdUnder(t, node, "", []string{"prlimit", "--nofile=276:276", "--"})
	logs := tw.p.logs()
	for _, line := range []string{
		`msg="lnd_tower_max_connections lowered to fit the open files limit" configured=1024 used=10 nofile=276`,
		`msg="api_max_connections lowered to fit the open files limit" configured=8192 used=10 nofile=276`,
	} {
		if !strings.Contains(logs, line) {
			t.Errorf("no log line %q", line)
		}
	}
	if m := tw.metric(t, "teos_lnd_connections_max"); m != 10 {
		t.Fatalf("teos_lnd_connections_max = %v, want 10", m)
	}

	var holders []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", tw.lndAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		holders = append(holders, c)
	}
	waitFor(t, 5*time.Second, "the lnd port full", func() (bool, error) {
		open, full := tw.metric(t, "teos_lnd_connections"), tw.metric(t, "teos_lnd_connections_full_total")
		return open == 10 && full >= 1, fmt.Errorf("%v open, full %v times", open, full)
	})
	raw, err := hex.DecodeString(tw.id)
	if err != nil {
		t.Fatal(err)
	}
	towerKey, err := btcec.ParsePubKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	clientKey, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	waiting, err := net.Dial("tcp", tw.lndAddr) // completes in the kernel's queue
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	m := brontide.NewBrontideMachine(true, &keychain.PrivKeyECDH{PrivKey: clientKey}, towerKey)
	act1, err := m.GenActOne()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waiting.Write(act1[:]); err != nil {
		t.Fatal(err)
	}
	// A holder still silent at the handshake timeout (10 s after its accept) is closed, which
	// frees its place for the waiting client: on a machine that slow the count proves nothing.
	// Read after the count, the timeouts include any that freed a place before it.
	accepted := tw.metric(t, "teos_lnd_connections_accepted_total")
	if timedOut := tw.metric(t, `teos_lnd_handshakes_total{outcome="timeout"}`); timedOut > 0 {
		t.Logf("%v holders timed out before the check (%v connections accepted): the cap was not checked", timedOut, accepted)
	} else if accepted != 10 {
		t.Fatalf("%v connections accepted with 10 places", accepted)
	}
	holders[0].Close()
	var act2 [brontide.ActTwoSize]byte
	waiting.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(waiting, act2[:]); err != nil {
		t.Fatalf("no act two once a place was freed: %v", err)
	}
	if err := m.RecvActTwo(act2); err != nil {
		t.Fatalf("act two: %v", err)
	}
}
