package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
)

// TestHeldAddAtShutdownIsNotRefused: adds held through a bitcoind outage when teosd is told to
// stop end pending in the CLN plugin on its first send (on_commitment_revocation), and its
// retrier gets them accepted by the restarted tower. On the first send the plugin keeps only a
// failed connect or error_code 7 pending: any other error_code files the appointment as invalid
// for good, and a connection cut once established (or a body it cannot decode) loses it. So the
// tower answers 503 with error_code 7; the retrier then re-registers first, as it does for 7,
// and sends again.
func TestHeldAddAtShutdownIsNotRefused(t *testing.T) {
	node := startNode(t)
	proxy := startProxy(t, node.RPCHost)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	tw.args = append(tw.args, "--btcrpcport", proxy.port())
	tw.start()
	alice := newUser(t)
	plugin := pluginRegistered(tw, alice.register(t, tw))

	proxy.down()
	waitFor(t, "teos_bitcoind_reachable 0", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_bitcoind_reachable") == 0
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const n = 3
	appts := make([]teos.Appointment, n)
	verdicts := make(chan pluginVerdict, n)
	for i := range appts {
		appts[i] = randomAppointment(t, 100)
		go func() {
			v, _ := pluginSend(ctx, tw.apiURL, tw.id, alice, appts[i])
			verdicts <- v
		}()
	}
	waitFor(t, "the adds held", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_api_held_requests") == n
	})
	tw.stop()
	for range n {
		v := <-verdicts
		if !v.keptPending() {
			t.Fatalf("add held at shutdown: the plugin's first send files it %s, want it kept pending", v)
		}
		plugin.note(v)
	}
	if !plugin.subscriptionError {
		t.Fatalf("the plugin's tower status is not SubscriptionError after the stopping answer")
	}

	// The retrier's first run finds the tower down: registering fails, which is transient.
	if v, err := plugin.retry(ctx, alice, appts[0]); err != nil || v != verdictPending {
		t.Fatalf("retrier run with the tower down: %s, %v; want it pending", v, err)
	}
	proxy.up(t)
	tw.start()
	for i, a := range appts {
		v, err := plugin.retry(ctx, alice, a)
		if err != nil || v != verdictAccepted {
			t.Fatalf("retrier, add %d: %s, %v; want a receipt", i, v, err)
		}
	}
	alice.wantSubscription(t, tw, plugin.slots, appts[0].Locator, appts[1].Locator, appts[2].Locator)
	tw.stop()
}
