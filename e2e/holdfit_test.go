package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

	proxy.down()
	waitFor(t, "teos_bitcoind_reachable 0", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_bitcoind_reachable") == 0
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const bound = 6
	verdicts := make(chan pluginVerdict, bound)
	for range bound {
		go func() {
			v, _ := pluginSend(ctx, tw.apiURL, tw.id, alice, randomAppointment(t, 100))
			verdicts <- v
		}()
	}
	waitFor(t, "6 requests held", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_api_held_requests") == bound
	})
	start := time.Now()
	if !unavailable(t, tw, "/add_appointment", alice.addRequest(randomAppointment(t, 100))) {
		t.Fatal("a request past the held bound was not answered 503 / 32")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("refused after %v: held instead of refused at once", took)
	}
	if code := ping(t, tw); code != http.StatusOK {
		t.Errorf("/ping %d with the held bound reached", code)
	}
	proxy.up(t)
	for range bound {
		if v := <-verdicts; v != verdictAccepted {
			t.Errorf("held request: %s", v)
		}
	}
	tw.stop()
}
