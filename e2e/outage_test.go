package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// TestBitcoindOutage cuts teosd off from btcd while it runs. With api_hold_timeout 0 (rust-teos's
// behaviour: no hold) the four POST endpoints answer 503 / 32 at once and /ping stays 200;
// teosd survives; blocks mined meanwhile, the first holding a breach, are all processed once
// the link is back. (The default hold is in TestHeldThroughBitcoindOutage.)
//
// The outage is a TCP proxy going down rather than btcd dying: btcd wipes a regtest chain when
// it restarts, and teosd refuses simnet ("btc_network not recognized"). To teosd both look the
// same: connections refused, open ones cut.
func TestBitcoindOutage(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	proxy := startProxy(t, node.RPCHost)
	tw := newTower(t, node, "")
	tw.args = append(tw.args, "--btcrpcport", proxy.port(), "--apiholdtimeout", "0") // the last value of a flag wins
	tw.start()

	alice := newUser(t)
	alice.register(t, tw)
	b := node.NewBreach(t)
	alice.add(t, tw, breachAppointment(t, b))

	proxy.down()
	waitFor(t, "503 while bitcoind is unreachable", func() bool { return unavailable(t, tw, "/register", alice.registerRequest()) })
	c.send(t, b.Commitment)
	if block, _ := c.mine(t); !blockHas(block, b.Commitment) {
		t.Fatal("commitment not mined")
	}
	node.Generate(t, 3)
	tip := c.tip(t)

	// Several polling intervals of outage, checked all along.
	a := randomAppointment(t, 100)
	loc := teos.NewLocator(b.Commitment.TxHash())
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for path, body := range map[string]any{
			"/register":              alice.registerRequest(),
			"/add_appointment":       alice.addRequest(a),
			"/get_appointment":       map[string]string{"locator": loc.String(), "signature": wtcrypto.SignMessage(teos.GetAppointmentMessage(loc), alice.key)},
			"/get_subscription_info": map[string]string{"signature": wtcrypto.SignMessage(teos.GetSubscriptionInfoMessage, alice.key)},
		} {
			if !unavailable(t, tw, path, body) {
				t.Fatalf("%s answered while bitcoind is unreachable", path)
			}
		}
		if code := ping(t, tw); code != http.StatusOK {
			t.Fatalf("/ping %d while bitcoind is unreachable", code)
		}
		tw.alive()
		if c.inMempool(t, b.Penalty.TxHash()) {
			t.Fatal("penalty broadcast through a link that is down")
		}
	}

	proxy.up(t)
	latency := c.waitInMempool(t, b.Penalty.TxHash(), time.Now())
	t.Logf("penalty in the mempool %v after the link came back", latency)
	waitTowerAt(t, tw, tip) // caught up, to the block
	if r := alice.add(t, tw, a); r.StartBlock != tip {
		t.Fatalf("receipt start_block %d, want tip %d", r.StartBlock, tip)
	}
	if block, _ := c.mine(t); !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	alice.waitResponded(t, tw, b)
	tw.stop()
}

func (u *user) registerRequest() map[string]string {
	return map[string]string{"user_id": u.id.String()}
}

// unavailable reports whether path answers 503 with error_code 32.
func unavailable(t testing.TB, tw *tower, path string, body any) bool {
	t.Helper()
	code, raw := post(t, tw.apiURL, path, body, nil)
	if code != http.StatusServiceUnavailable {
		return false
	}
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"error_code"`
	}
	if err := json.Unmarshal(raw, &e); err != nil || e.Code != teos.ErrCodeServiceUnavailable || e.Error != "Service currently unavailable" {
		t.Fatalf("%s: 503 with body %s", path, raw)
	}
	return true
}

func ping(t testing.TB, tw *tower) int {
	t.Helper()
	resp, err := http.Get(tw.apiURL + "/ping")
	if err != nil {
		t.Fatalf("/ping: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
