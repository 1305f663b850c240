package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestHeldAddAtShutdownIsNotRefused: an add_appointment held through a bitcoind outage when
// teosd is told to stop gets no answer (its connection is closed), not 503 / 32. The CLN
// plugin files an appointment answered with any error_code but 7 as invalid for that tower for
// good, the one its retrier sends again included; one whose connection is cut stays pending in
// the retrier (retrier.rs: a request error that is not a connect failure leaves it pending) and
// is sent again, here to the restarted tower, which accepts it.
func TestHeldAddAtShutdownIsNotRefused(t *testing.T) {
	node := startNode(t)
	proxy := startProxy(t, node.RPCHost)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	tw.args = append(tw.args, "--btcrpcport", proxy.port())
	tw.start()
	alice := newUser(t)
	alice.register(t, tw)

	proxy.down()
	waitFor(t, "teos_bitcoind_reachable 0", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_bitcoind_reachable") == 0
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a := randomAppointment(t, 100)
	verdict := make(chan pluginVerdict, 1)
	go func() {
		v, _ := pluginSend(ctx, tw.apiURL, tw.id, alice, a)
		verdict <- v
	}()
	waitFor(t, "the add held", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_api_held_requests") == 1
	})
	tw.stop()
	// verdictDropped is the hook's name for a cut connection; to the retrier it is "pending".
	if v := <-verdict; v != verdictDropped {
		t.Fatalf("add held at shutdown: plugin verdict %s, want a cut connection (kept pending by the retrier)", v)
	}

	proxy.up(t)
	tw.start()
	if v, _ := pluginSend(ctx, tw.apiURL, tw.id, alice, a); v != verdictAccepted {
		t.Fatalf("the retried add: %s", v)
	}
	tw.stop()
}
