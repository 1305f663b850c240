package bitcoind_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/bitcoind"
)

// feeCapNode answers sendrawtransaction as one kind of node answers a transaction paying more
// than the default fee rate cap (0.10 BTC/kvB), by the form of the second argument; it records
// that argument of every request ("-" when absent).
type feeCapNode struct {
	srv  *httptest.Server
	mu   sync.Mutex
	kind string
	seen []string
}

// The answers are the nodes' own (bitcoind's rpc/mempool.cpp and node/transaction.cpp, btcd's
// rpcserver.go and btcjson), for a transaction above the cap.
const (
	coreFeeExceeded = "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"
	coreTypeBool    = "JSON value of type bool is not of expected type number"
	core019Bool     = "Second argument must be numeric (maxfeerate) and no longer supports a boolean. To allow a transaction with high fees, set maxfeerate to 0."
	core018Number   = "Expected type bool, got number"
	btcdOldNumber   = "parameter #2 'allowhighfees' must be type bool (got float64)"
)

func (n *feeCapNode) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Method string            `json:"method"`
		Params []json.RawMessage `json:"params"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil || req.Method != "sendrawtransaction" || len(req.Params) == 0 {
		http.Error(w, "unexpected request", http.StatusTeapot)
		return
	}
	arg := "-"
	if len(req.Params) > 1 {
		arg = string(req.Params[1])
	}
	n.mu.Lock()
	n.seen = append(n.seen, arg)
	kind := n.kind
	n.mu.Unlock()
	isBool := arg == "true" || arg == "false"
	isNumber := arg != "-" && !isBool
	answer := func(code int, msg string) {
		if code == 0 {
			_, _ = io.WriteString(w, `{"result":"`+strings.Repeat("ab", 32)+`","error":null,"id":1}`)
			return
		}
		b, _ := json.Marshal(map[string]any{"result": nil, "error": map[string]any{"code": code, "message": msg}, "id": 1})
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(b)
	}
	switch kind {
	case "bitcoind", "bitcoind 0.19":
		switch {
		case isBool && kind == "bitcoind":
			answer(-3, coreTypeBool)
		case isBool:
			answer(-8, core019Bool)
		case arg == "0":
			answer(0, "")
		default: // the default 0.10 or any other cap
			answer(-25, coreFeeExceeded)
		}
	case "bitcoind 0.18":
		switch {
		case isNumber:
			answer(-3, core018Number)
		case arg == "true":
			answer(0, "")
		default:
			answer(-26, "absurdly-high-fee")
		}
	case "btcd": // either form, and no cap at all
		answer(0, "")
	case "btcd before v0.22":
		if isNumber {
			answer(-32602, btcdOldNumber)
		} else {
			answer(0, "")
		}
	case "hex only":
		if arg != "-" {
			answer(-32602, "too many parameters")
		} else {
			answer(0, "")
		}
	}
}

func newFeeCapNode(t *testing.T, kind string) (*feeCapNode, *bitcoind.Client) {
	t.Helper()
	n := &feeCapNode{kind: kind}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(n.srv.URL, "http://"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return n, c
}

// sent returns and forgets the second arguments seen so far.
func (n *feeCapNode) sent() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.seen
	n.seen = nil
	return s
}

func highFeeTx() *wire.MsgTx {
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(&wire.TxIn{})
	tx.AddTxOut(&wire.TxOut{Value: 1})
	return tx
}

// TestSendRawTransactionHighFee: a transaction above the default fee rate cap is accepted by
// every kind of node, in the form that node takes, found once and then sent first.
func TestSendRawTransactionHighFee(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind          string
		first, second []string // the second arguments of the first and of the next send
	}{
		{"bitcoind", []string{"0"}, []string{"0"}},
		{"bitcoind 0.19", []string{"0"}, []string{"0"}},
		{"btcd", []string{"0"}, []string{"0"}},
		{"bitcoind 0.18", []string{"0", "true"}, []string{"true"}},
		{"btcd before v0.22", []string{"0", "true"}, []string{"true"}},
		// Neither form: sent bare, each time (the node's own cap then applies).
		{"hex only", []string{"0", "true", "-"}, []string{"0", "true", "-"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			node, c := newFeeCapNode(t, tc.kind)
			for i, want := range [][]string{tc.first, tc.second} {
				if _, err := c.SendRawTransaction(t.Context(), highFeeTx()); err != nil {
					t.Fatalf("send %d: %v", i+1, err)
				}
				if got := node.sent(); !slices.Equal(got, want) {
					t.Fatalf("send %d: second arguments %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

// TestSendRawTransactionNodeUpgraded: a node replaced by one that takes the other form (an old
// bitcoind upgraded behind the same address) is followed on the next send.
func TestSendRawTransactionNodeUpgraded(t *testing.T) {
	t.Parallel()
	node, c := newFeeCapNode(t, "bitcoind 0.18")
	if _, err := c.SendRawTransaction(t.Context(), highFeeTx()); err != nil {
		t.Fatal(err)
	}
	node.sent()
	node.mu.Lock()
	node.kind = "bitcoind"
	node.mu.Unlock()
	for i, want := range [][]string{{"true", "0"}, {"0"}} {
		if _, err := c.SendRawTransaction(t.Context(), highFeeTx()); err != nil {
			t.Fatalf("send %d after the upgrade: %v", i+1, err)
		}
		if got := node.sent(); !slices.Equal(got, want) {
			t.Fatalf("send %d after the upgrade: second arguments %v, want %v", i+1, got, want)
		}
	}
}

// TestSendRawTransactionRejectionNotRetried: an answer about the transaction itself is the
// answer, as the node gave it: no other form is tried.
func TestSendRawTransactionRejectionNotRetried(t *testing.T) {
	t.Parallel()
	for _, code := range []int{-22, -25, -26, -27, -1} {
		node := newFakeNode(t, rpcErr(500, code, "no"))
		_, err := node.client(t, time.Second).SendRawTransaction(t.Context(), highFeeTx())
		var rpcErr *bitcoind.RPCError
		if !errors.As(err, &rpcErr) || rpcErr.Code != code {
			t.Fatalf("code %d: error %v", code, err)
		}
		node.mu.Lock()
		n := len(node.seen)
		node.mu.Unlock()
		if n != 1 {
			t.Fatalf("code %d: %d requests, want 1", code, n)
		}
	}
}

// TestSendRawTransactionAllFormsRefused: when even the bare form is refused for its
// parameters, that last answer is the error.
func TestSendRawTransactionAllFormsRefused(t *testing.T) {
	t.Parallel()
	node := newFakeNode(t, rpcErr(500, -3, "a"), rpcErr(500, -8, "b"), rpcErr(500, -32602, "c"))
	_, err := node.client(t, time.Second).SendRawTransaction(t.Context(), highFeeTx())
	var rpcErr *bitcoind.RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != -32602 || bitcoind.IsUnreachable(err) {
		t.Fatalf("error %v, want the last answer, -32602", err)
	}
}
