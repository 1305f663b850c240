package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHoldBoundFitsTheOpenFilesLimit: teosd under an open files limit of 264 (prlimit) fits
// the public API to 8 connections (264 less the reserve of 256), and holds at most three
// quarters of those during an outage, as with api_max_connections = 8
// (TestHoldFloodBounded): a request past 6 held is answered 503 / 32 at once and /ping still
// answers. The bound was taken from api_max_connections as configured (8192: 1024 held), so
// held requests could take every connection.
func TestHoldBoundFitsTheOpenFilesLimit(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("no prlimit (util-linux)")
	}
	node := startNode(t)
	proxy := startProxy(t, node.RPCHost)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	// exec keeps the pid: the harness stops teosd itself.
	wrap := filepath.Join(t.TempDir(), "teosd-nofile")
	script := fmt.Sprintf("#!/bin/sh\nexec prlimit --nofile=264:264 -- %q \"$@\"\n", teosdBin)
	if err := os.WriteFile(wrap, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tw.bin = wrap
	tw.args = append(tw.args, "--btcrpcport", proxy.port())
	tw.start()
	if logs := tw.logs(); !strings.Contains(logs, "api_max_connections lowered to fit the open files limit") || !strings.Contains(logs, "used=8 ") {
		t.Fatalf("no warn line fitting the public API to 8 connections:\n%s", logs)
	}
	alice := newUser(t)
	alice.register(t, tw)

	fillHoldThenRefuse(t, tw, proxy, metricsURL, alice)
	tw.stop()
}
