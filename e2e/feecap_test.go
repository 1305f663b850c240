package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/wire"
)

// coreFeeExceeded is bitcoind's answer (-25) to sendrawtransaction for a transaction whose fee
// rate is above maxfeerate (node/transaction.cpp, TransactionError::MAX_FEE_EXCEEDED).
const coreFeeExceeded = "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"

// feeCap sits in front of btcd and gives its sendrawtransaction bitcoind's fee rate cap, which
// btcd lacks (its handler ignores the second argument): maxfeerate, a number in BTC/kvB,
// default 0.10, 0 for none; a bool is a type error (-3), as in bitcoind since v25. The fee
// rate is btcd's own, from testmempoolaccept with that cap ("max-fee-exceeded"); a
// transaction within the cap, and every other call, goes to btcd unchanged.
type feeCap struct {
	*rpcProxy
	target string
	mu     sync.Mutex
	sends  []capSend
	capped int // sends refused for their fee rate
}

func startFeeCap(t *testing.T, target string) *feeCap {
	t.Helper()
	f := &feeCap{target: target}
	f.rpcProxy = startRPCProxy(t, target, func(w http.ResponseWriter, r *http.Request, call *rpcCall) bool {
		if call.Method != "sendrawtransaction" || len(call.Params) == 0 {
			return false
		}
		code, msg := f.check(t, r.Header.Get("Authorization"), call.Params)
		if code == 0 {
			return false
		}
		b, _ := json.Marshal(map[string]any{"result": nil, "error": map[string]any{"code": code, "message": msg}, "id": call.ID})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(b)
		return true
	})
	return f
}

// check returns bitcoind's error for a send it would refuse, or 0.
func (f *feeCap) check(t *testing.T, auth string, params []json.RawMessage) (int, string) {
	arg := "-"
	if len(params) > 1 {
		arg = string(params[1])
	}
	var hexTx string
	if json.Unmarshal(params[0], &hexTx) != nil {
		return 0, "" // btcd answers a bad hex itself
	}
	f.mu.Lock()
	f.sends = append(f.sends, capSend{hexTx, arg})
	f.mu.Unlock()
	maxRate := 0.10
	if arg != "-" && arg != "null" {
		rate, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			return -3, "JSON value of type " + arg + " is not of expected type number"
		}
		maxRate = rate
	}
	if maxRate == 0 {
		return 0, ""
	}
	req, _ := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": 1, "method": "testmempoolaccept", "params": []any{[]string{hexTx}, maxRate}})
	hr, err := http.NewRequest(http.MethodPost, "http://"+f.target+"/", bytes.NewReader(req))
	if err != nil {
		t.Errorf("fee cap: %v", err)
		return 0, ""
	}
	hr.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Errorf("fee cap: testmempoolaccept: %v", err)
		return 0, ""
	}
	defer resp.Body.Close()
	var out struct {
		Result []struct {
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reject-reason"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Result) != 1 {
		t.Errorf("fee cap: testmempoolaccept answered %d: %v", resp.StatusCode, err)
		return 0, ""
	}
	if !out.Result[0].Allowed && out.Result[0].Reason == "max-fee-exceeded" {
		f.mu.Lock()
		f.capped++
		f.mu.Unlock()
		return -25, coreFeeExceeded
	}
	return 0, "" // within the cap, or refused for another reason: btcd says which
}

// capSend is one sendrawtransaction: the hex and the second argument ("-" when absent).
type capSend struct{ hex, arg string }

// seen returns the second arguments of the sends of tx, and how many sends of any
// transaction the cap refused.
func (f *feeCap) seen(t *testing.T, tx *wire.MsgTx) (args []string, capped int) {
	t.Helper()
	h := hex.EncodeToString(txBytes(t, tx))
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sends {
		if s.hex == h {
			args = append(args, s.arg)
		}
	}
	return args, f.capped
}

// feeRate is tx's fee rate in BTC/kvB, its inputs' values given.
func feeRate(tx *wire.MsgTx, in int64) float64 {
	var out int64
	for _, o := range tx.TxOut {
		out += o.Value
	}
	weight := 3*tx.SerializeSizeStripped() + tx.SerializeSize()
	vsize := (weight + 3) / 4
	return float64(in-out) / 1e8 / float64(vsize) * 1000
}

// TestBreachPenaltyAboveFeeRateCap: the user's penalty pays 1 BTC, about 5 BTC/kvB: over 50
// times bitcoind's default sendrawtransaction cap (0.10 BTC/kvB), as a small channel's penalty
// may after its client gave an output to fees. teosd broadcasts it with maxfeerate 0, bitcoind's "no cap",
// and it is mined. Before, teosd sent the hex alone, bitcoind answered -25 and the responder
// deleted the appointment as invalid. btcd caps nothing, so it runs behind feeCap, bitcoind's
// cap with btcd's fee rates.
func TestBreachPenaltyAboveFeeRateCap(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	capped := startFeeCap(t, node.RPCHost)
	tw := newTower(t, node, "")
	tw.args = append(tw.args, "--btcrpcport", capped.port()) // the last value of a flag wins
	tw.start()

	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	const penaltyFee = 100_000_000
	b := node.NewBreachPenaltyFee(t, penaltyFee)
	control := node.NewBreachPenaltyFee(t, penaltyFee) // no appointment: checks the cap bites
	alice.add(t, tw, breachAppointment(t, b))
	commitmentOuts := b.Commitment.TxOut[0].Value + b.Commitment.TxOut[1].Value
	if rate := feeRate(b.Penalty, commitmentOuts); rate < 10*0.10 {
		t.Fatalf("penalty pays %.4f BTC/kvB, want far above the 0.10 cap", rate)
	} else {
		t.Logf("penalty pays %.4f BTC/kvB", rate)
	}

	c.send(t, control.Commitment)
	c.send(t, b.Commitment)
	block, _ := c.mine(t)
	if !blockHas(block, b.Commitment, control.Commitment) {
		t.Fatal("commitments not mined")
	}
	// The cap refuses such a penalty sent the old way, and as bitcoind words it.
	code, msg := sendThrough(t, capped, node.User, node.Pass, control.Penalty)
	if code != -25 || msg != coreFeeExceeded {
		t.Fatalf("control penalty without maxfeerate through the cap: %d %q, want -25 %q", code, msg, coreFeeExceeded)
	}

	waitFor(t, "the penalty in btcd's mempool, or its appointment gone", func() bool {
		return c.inMempool(t, b.Penalty.TxHash()) || alice.isGone(t, tw, locatorOf(b))
	})
	if args, n := capped.seen(t, b.Penalty); !c.inMempool(t, b.Penalty.TxHash()) {
		t.Fatalf("penalty not broadcast: sent with second arguments %v, %d sends refused for the fee rate\n%s", args, n, tw.logs())
	}
	alice.waitResponded(t, tw, b)
	block, _ = c.mine(t)
	if !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	alice.wantResponded(t, tw, b)
	alice.wantSubscription(t, tw, slots-1, locatorOf(b))
	args, n := capped.seen(t, b.Penalty)
	if n != 1 || len(args) == 0 || slices.ContainsFunc(args, func(a string) bool { return a != "0" }) {
		t.Fatalf("penalty sent with second arguments %v, %d sends refused for the fee rate; want all 0, only the control's refused", args, n)
	}
	tw.stop()
}

// sendThrough sends tx with the hex alone through the cap and returns the RPC error.
func sendThrough(t *testing.T, f *feeCap, user, pass string, tx *wire.MsgTx) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": 1, "method": "sendrawtransaction", "params": []string{hex.EncodeToString(txBytes(t, tx))}})
	req, err := http.NewRequest(http.MethodPost, f.srv.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("sendrawtransaction through the cap: HTTP %d: %v", resp.StatusCode, err)
	}
	if out.Error == nil {
		return 0, fmt.Sprintf("accepted (HTTP %d)", resp.StatusCode)
	}
	return out.Error.Code, out.Error.Message
}
