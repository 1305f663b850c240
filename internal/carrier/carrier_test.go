package carrier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/bitcoind"
)

// reply is one scripted JSON-RPC answer: an error when code is non-zero, else result.
type reply struct {
	result any
	code   int
	msg    string // the error's message; "scripted error" when empty
}

func ok(result any) reply   { return reply{result: result} }
func rpcErr(code int) reply { return reply{code: code} }

// rejectedWith is a -26 with bitcoind's (or btcd's) reject message.
func rejectedWith(msg string) reply { return reply{code: -26, msg: msg} }

// node is a bitcoind JSON-RPC server with scripted answers per method.
type node struct {
	t      *testing.T
	mu     sync.Mutex
	script map[string]reply
	down   bool // answer like a proxy with the node gone: HTTP 502, no JSON
	calls  map[string]int
}

func newNode(t *testing.T) (*node, *httptest.Server) {
	n := &node{t: t, script: map[string]reply{}, calls: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(srv.Close)
	return n, srv
}

func (n *node) set(method string, r reply) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.script[method] = r
}

func (n *node) setDown(down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = down
}

func (n *node) count(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[method]
}

func (n *node) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID     uint64 `json:"id"`
		Method string `json:"method"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	n.mu.Lock()
	n.calls[req.Method]++
	rep, known := n.script[req.Method]
	down := n.down
	n.mu.Unlock()
	if down {
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	resp := map[string]any{"id": req.ID, "result": nil, "error": nil}
	switch {
	case !known:
		resp["error"] = map[string]any{"code": -32601, "message": "Method not found"}
		w.WriteHeader(http.StatusNotFound)
	case rep.code != 0:
		msg := rep.msg
		if msg == "" {
			msg = "scripted error"
		}
		resp["error"] = map[string]any{"code": rep.code, "message": msg}
		w.WriteHeader(http.StatusInternalServerError)
	default:
		resp["result"] = rep.result
	}
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		n.t.Errorf("encode reply: %v", err)
	}
}

func clientFor(t *testing.T, srv *httptest.Server) *bitcoind.Client {
	t.Helper()
	c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testTx(seed byte) *wire.MsgTx {
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&chainhash.Hash{seed}, 0), nil, nil))
	tx.AddTxOut(wire.NewTxOut(1000, []byte{0x51}))
	return tx
}

const unknownTx = -5

func TestSendCodeTable(t *testing.T) {
	tx := testTx(1)
	for _, tc := range []struct {
		name   string
		send   reply
		lookup reply
		want   Result
	}{
		{"accepted", ok(tx.TxHash().String()), rpcErr(unknownTx), Result{Status: StatusInMempool}},
		{"already in chain", rpcErr(-27), rpcErr(unknownTx), Result{Status: StatusIrrevocablyResolved}},
		{"policy rejection", rpcErr(-26), rpcErr(unknownTx), Result{Status: StatusRejected, Code: -26}},
		{"verify error", rpcErr(-25), rpcErr(unknownTx), Result{Status: StatusRejected, Code: -25}},
		{"deserialization", rpcErr(-22), rpcErr(unknownTx), Result{Status: StatusRejected, Code: -22}},
		{"other rpc error", rpcErr(-1), rpcErr(unknownTx), Result{Status: StatusRejected, Code: CodeUnknown}},
		{"unknown txid code", rpcErr(-5), rpcErr(unknownTx), Result{Status: StatusRejected, Code: CodeUnknown}},
		{"internal error", rpcErr(-32603), rpcErr(unknownTx), Result{Status: StatusRejected, Code: CodeUnknown}},
		// btcd says -26 "already have transaction" where bitcoind says success.
		{"-26 but in mempool", rpcErr(-26), ok(map[string]any{"txid": tx.TxHash().String()}), Result{Status: StatusInMempool}},
		{"-26 lookup fails", rpcErr(-26), rpcErr(-1), Result{Status: StatusRejected, Code: -26}},
		// btcd's -26 "already have transaction", then mined before the look-up (seen in TestChaos).
		{"-26 and confirmed", rpcErr(-26), ok(map[string]any{"blockhash": chainhash.Hash{9}.String()}), Result{Status: StatusIrrevocablyResolved}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, srv := newNode(t)
			n.set("sendrawtransaction", tc.send)
			n.set("getrawtransaction", tc.lookup)
			// Block 9, at height 5 of the best chain.
			n.set("getblockheader", ok(map[string]any{"height": 5}))
			n.set("getblockhash", ok(chainhash.Hash{9}.String()))
			c := New(clientFor(t, srv), nil)
			got, err := c.Send(t.Context(), tx)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			got.Reason = "" // TestSendClassifiesRejectReasons checks it
			if got != tc.want {
				t.Fatalf("Send = %+v, want %+v", got, tc.want)
			}
			if n.count("sendrawtransaction") != 1 {
				t.Fatalf("sendrawtransaction called %d times, want 1", n.count("sendrawtransaction"))
			}
		})
	}
}

// With -txindex, bitcoind's getrawtransaction names the block of a transaction even after
// that block left the chain. A reorged-out penalty that a conflicting transaction now outbids
// (-26) is not in the chain: taking it for "already in the chain" let the responder complete
// its tracker, refunding the slots, though the penalty was buried nowhere.
func TestSendRejectedTxInStaleBlockIsNotInChain(t *testing.T) {
	tx := testTx(1)
	for _, tc := range []struct {
		name, reason string
		want         Result
	}{
		{"final", "insufficient fee", Result{Status: StatusRejected, Code: -26, Reason: "insufficient fee"}},
		{"passing", "mempool min fee not met", Result{Status: StatusRefusedForNow, Code: -26, Reason: "mempool min fee not met"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, srv := newNode(t)
			n.set("sendrawtransaction", rejectedWith(tc.reason))
			n.set("getrawtransaction", ok(map[string]any{"blockhash": chainhash.Hash{9}.String()}))
			n.set("getblockheader", ok(map[string]any{"height": 5}))
			n.set("getblockhash", ok(chainhash.Hash{8}.String())) // another block at height 5
			got, err := New(clientFor(t, srv), nil).Send(t.Context(), tx)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got != tc.want {
				t.Fatalf("Send = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSendCachesUntilCleared(t *testing.T) {
	n, srv := newNode(t)
	n.set("sendrawtransaction", rpcErr(-25))
	c := New(clientFor(t, srv), nil)
	tx := testTx(2)
	for range 3 {
		got, err := c.Send(t.Context(), tx)
		if err != nil || got != (Result{Status: StatusRejected, Code: -25, Reason: "scripted error"}) {
			t.Fatalf("Send = %+v, %v", got, err)
		}
	}
	if got := n.count("sendrawtransaction"); got != 1 {
		t.Fatalf("sendrawtransaction called %d times before ClearCache, want 1", got)
	}
	// Another txid is not served from the cache.
	if _, err := c.Send(t.Context(), testTx(3)); err != nil {
		t.Fatal(err)
	}
	if got := n.count("sendrawtransaction"); got != 2 {
		t.Fatalf("sendrawtransaction called %d times after a second txid, want 2", got)
	}
	c.ClearCache()
	n.set("sendrawtransaction", ok(tx.TxHash().String()))
	got, err := c.Send(t.Context(), tx)
	if err != nil || got.Status != StatusInMempool {
		t.Fatalf("Send after ClearCache = %+v, %v; want in mempool", got, err)
	}
	if got := n.count("sendrawtransaction"); got != 3 {
		t.Fatalf("sendrawtransaction called %d times after ClearCache, want 3", got)
	}
}

func TestSendTransportFailureIsAnErrorNotCached(t *testing.T) {
	n, srv := newNode(t)
	n.setDown(true)
	n.set("sendrawtransaction", ok(testTx(4).TxHash().String()))
	c := New(clientFor(t, srv), nil)
	tx := testTx(4)

	_, err := c.Send(t.Context(), tx)
	if !bitcoind.IsUnreachable(err) {
		t.Fatalf("Send on a down node: err = %v, want an unreachable error", err)
	}
	n.setDown(false)
	got, err := c.Send(t.Context(), tx)
	if err != nil || got.Status != StatusInMempool {
		t.Fatalf("Send after recovery = %+v, %v; want in mempool (the failure must not be cached)", got, err)
	}
}

func TestSendConnectionRefusedReturnsPromptly(t *testing.T) {
	_, srv := newNode(t)
	client := clientFor(t, srv)
	srv.Close()
	c := New(client, nil)
	start := time.Now()
	_, err := c.Send(t.Context(), testTx(5))
	if !bitcoind.IsUnreachable(err) {
		t.Fatalf("err = %v, want unreachable", err)
	}
	// The rust carrier would block here until bitcoind came back.
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Send took %v on a refused connection", d)
	}
	if _, err := c.InMempool(t.Context(), chainhash.Hash{1}); !bitcoind.IsUnreachable(err) {
		t.Fatalf("InMempool err = %v, want unreachable", err)
	}
}

func TestSendCancelledContextIsNotARejection(t *testing.T) {
	n, srv := newNode(t)
	n.set("sendrawtransaction", ok(testTx(6).TxHash().String()))
	c := New(clientFor(t, srv), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err := c.Send(ctx, testTx(6))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a cancelled ctx = %+v, %v; want context.Canceled", res, err)
	}
}

func TestSendNilTx(t *testing.T) {
	c := New(&fakeClient{}, nil)
	if _, err := c.Send(t.Context(), nil); err == nil {
		t.Fatal("Send(nil) succeeded")
	}
}

// fakeClient returns fixed errors, for failures the real client cannot produce on demand.
type fakeClient struct {
	sendErr, lookupErr error
}

func (f *fakeClient) SendRawTransaction(context.Context, *wire.MsgTx) (chainhash.Hash, error) {
	return chainhash.Hash{}, f.sendErr
}

func (f *fakeClient) RawTransactionInfo(context.Context, chainhash.Hash) (bool, *chainhash.Hash, error) {
	return false, nil, f.lookupErr
}

func (f *fakeClient) BestBlockHash(context.Context) (chainhash.Hash, error) {
	return chainhash.Hash{}, errors.New("not faked")
}

func (f *fakeClient) BlockHeight(context.Context, chainhash.Hash) (uint32, error) {
	return 0, errors.New("not faked")
}

func (f *fakeClient) BlockHash(context.Context, uint32) (chainhash.Hash, error) {
	return chainhash.Hash{}, errors.New("not faked")
}

func (f *fakeClient) Block(context.Context, chainhash.Hash) (*wire.MsgBlock, error) {
	return nil, errors.New("not faked")
}

func TestSendOtherErrorIsUnknownRejection(t *testing.T) {
	c := New(&fakeClient{sendErr: errors.New("something odd")}, nil)
	got, err := c.Send(t.Context(), testTx(7))
	if err != nil || got != (Result{Status: StatusRejected, Code: CodeUnknown}) {
		t.Fatalf("Send = %+v, %v; want rejected %d", got, err, CodeUnknown)
	}
}

func TestInMempool(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lookup  reply
		down    bool
		want    bool
		wantErr bool
	}{
		{"in mempool", ok(map[string]any{"txid": "00"}), false, true, false},
		{"confirmed", ok(map[string]any{"blockhash": chainhash.Hash{7}.String()}), false, false, false},
		{"unknown txid", rpcErr(-5), false, false, false},
		{"other rpc error", rpcErr(-1), false, false, false},
		{"transport", ok(map[string]any{}), true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, srv := newNode(t)
			n.set("getrawtransaction", tc.lookup)
			n.setDown(tc.down)
			c := New(clientFor(t, srv), nil)
			got, err := c.InMempool(t.Context(), chainhash.Hash{3})
			if (err != nil) != tc.wantErr {
				t.Fatalf("InMempool err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && !bitcoind.IsUnreachable(err) {
				t.Fatalf("InMempool err = %v, want an unreachable error", err)
			}
			if got != tc.want {
				t.Fatalf("InMempool = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestInMempoolOddErrorIsReturned(t *testing.T) {
	c := New(&fakeClient{lookupErr: errors.New("odd")}, nil)
	if _, err := c.InMempool(t.Context(), chainhash.Hash{}); err == nil {
		t.Fatal("InMempool hid a non-RPC error")
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{
		StatusInMempool: "in_mempool", StatusIrrevocablyResolved: "irrevocably_resolved",
		StatusRejected: "rejected", StatusRefusedForNow: "refused_for_now", Status(0): "status(0)",
	} {
		if got := s.String(); got != want {
			t.Errorf("Status(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

// A -26 whose reason passes by itself is StatusRefusedForNow; any other -26, including text the
// carrier does not know, stays a final rejection. The messages are the nodes' own wording.
func TestSendClassifiesRejectReasons(t *testing.T) {
	tx := testTx(3)
	for _, tc := range []struct {
		msg     string
		passing bool
	}{
		{"mempool min fee not met, 1000 < 2250", true},
		{"mempool full", true},
		{"too-long-mempool-chain, too many unconfirmed ancestors [limit: 25]", true},
		{"too-long-mempool-chain, exceeds descendant size limit for tx 1234 [limit: 101000]", true},
		{"too-large-cluster", true},
		{"package-mempool-limits", true},
		{"non-BIP68-final", true},
		{"non-final", true},
		{"TX rejected: rejected transaction 1234: transaction 1234 has insufficient priority (12 <= 57600000)", true},
		{"TX rejected: rejected transaction 1234: transaction 1234 has been rejected by the rate limiter due to low fees", true},
		{"TX rejected: transaction's sequence locks on inputs not met", true},
		{"TX rejected: transaction 1234 is not standard: transaction is not finalized", true},
		{"min relay fee not met, 0 < 110", false},
		{"bad-txns-inputs-missingorspent", false},
		{"txn-mempool-conflict", false},
		{"insufficient fee, rejecting replacement 1234; new feerate 0.0001 <= old feerate 0.0002", false},
		{"TX rejected: rejected transaction 1234: transaction 1234 has 10 fees which is under the required amount of 50000", false},
		{"something new in a later release", false},
		{"", false},
	} {
		t.Run(tc.msg, func(t *testing.T) {
			n, srv := newNode(t)
			n.set("sendrawtransaction", rejectedWith(tc.msg))
			n.set("getrawtransaction", rpcErr(unknownTx))
			got, err := New(clientFor(t, srv), nil).Send(t.Context(), tx)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			want := Result{Status: StatusRejected, Code: -26, Reason: tc.msg}
			if tc.passing {
				want.Status = StatusRefusedForNow
			}
			if tc.msg == "" {
				want.Reason = "scripted error"
			}
			if got != want {
				t.Fatalf("Send = %+v, want %+v", got, want)
			}
		})
	}
}

// A passing reason for a transaction bitcoind has after all is not a refusal: the look-up wins.
func TestSendPassingReasonButInMempool(t *testing.T) {
	tx := testTx(4)
	n, srv := newNode(t)
	n.set("sendrawtransaction", rejectedWith("mempool full"))
	n.set("getrawtransaction", ok(map[string]any{"txid": tx.TxHash().String()}))
	got, err := New(clientFor(t, srv), nil).Send(t.Context(), tx)
	if err != nil || got.Status != StatusInMempool {
		t.Fatalf("Send = %+v, %v; want in mempool", got, err)
	}
}

// A client whose errors have no RPCMessage is classified by its Error text.
func TestSendPassingReasonWithoutRPCMessage(t *testing.T) {
	c := New(&fakeClient{sendErr: codeErr{-26, "mempool min fee not met"}, lookupErr: codeErr{-5, "no such tx"}}, nil)
	got, err := c.Send(t.Context(), testTx(8))
	if err != nil || got.Status != StatusRefusedForNow || got.Code != -26 {
		t.Fatalf("Send = %+v, %v; want refused for now", got, err)
	}
}

type codeErr struct {
	code int
	msg  string
}

func (e codeErr) Error() string { return fmt.Sprintf("code %d: %s", e.code, e.msg) }
func (e codeErr) RPCCode() int  { return e.code }
