package bitcoind_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/bitcoind"
)

// fakeNode speaks just enough JSON-RPC for the client: each request gets the next scripted
// reply, and the requests are recorded.
type fakeNode struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	replies []reply
	seen    []seenRequest
}

type reply struct {
	status int
	body   string
}

type seenRequest struct {
	JSONRPC string            `json:"jsonrpc"`
	Method  string            `json:"method"`
	Params  []json.RawMessage `json:"params"`
	user    string
	pass    string
}

func newFakeNode(t *testing.T, replies ...reply) *fakeNode {
	f := &fakeNode{t: t, replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) serve(w http.ResponseWriter, r *http.Request) {
	var req seenRequest
	body, err := io.ReadAll(r.Body)
	if err != nil || json.Unmarshal(body, &req) != nil {
		f.t.Errorf("fake node: unreadable request %q: %v", body, err)
	}
	req.user, req.pass, _ = r.BasicAuth()
	f.mu.Lock()
	f.seen = append(f.seen, req)
	if len(f.replies) == 0 {
		f.mu.Unlock()
		f.t.Errorf("fake node: unexpected request %s", body)
		w.WriteHeader(http.StatusTeapot)
		return
	}
	rep := f.replies[0]
	f.replies = f.replies[1:]
	f.mu.Unlock()
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (f *fakeNode) client(t *testing.T, timeout time.Duration) *bitcoind.Client {
	t.Helper()
	c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(f.srv.URL, "http://"), User: "u", Pass: "p", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (f *fakeNode) lastRequest(t *testing.T) seenRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) == 0 {
		t.Fatal("fake node saw no request")
	}
	return f.seen[len(f.seen)-1]
}

func ok(result string) reply {
	return reply{http.StatusOK, `{"result":` + result + `,"error":null,"id":1}`}
}

func rpcErr(status int, code int, msg string) reply {
	b, _ := json.Marshal(map[string]any{"result": nil, "error": map[string]any{"code": code, "message": msg}, "id": 1})
	return reply{status, string(b)}
}

func quoted(s string) string { return `"` + s + `"` }

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		reply       reply
		wantCode    int // an RPCError with this code, when non-zero
		wantUnauth  bool
		wantUnreach bool
	}{
		{name: "verify error, HTTP 200 (btcd)", reply: rpcErr(200, -25, "TX rejected: orphan"), wantCode: -25},
		{name: "rejected, HTTP 500 (bitcoind)", reply: rpcErr(500, -26, "txn-mempool-conflict"), wantCode: -26},
		{name: "already in chain", reply: rpcErr(500, -27, "Transaction outputs already in utxo set"), wantCode: -27},
		{name: "decode failed", reply: rpcErr(500, -22, "TX decode failed"), wantCode: -22},
		{name: "unknown txid", reply: rpcErr(500, -5, "No such mempool or blockchain transaction"), wantCode: -5},
		{name: "method not found, HTTP 404", reply: rpcErr(404, -32601, "Method not found"), wantCode: -32601},
		{name: "warming up", reply: rpcErr(500, -28, "Loading block index..."), wantUnreach: true},
		{name: "HTTP 401", reply: reply{401, ""}, wantUnauth: true, wantUnreach: true},
		{name: "HTTP 401 with text", reply: reply{401, "401 Unauthorized.\n"}, wantUnauth: true, wantUnreach: true},
		{name: "HTTP 403", reply: reply{403, ""}, wantUnauth: true, wantUnreach: true},
		{name: "HTTP 500 text", reply: reply{500, "Internal Server Error"}, wantUnreach: true},
		{name: "HTTP 503 work queue", reply: reply{503, "Work queue depth exceeded"}, wantUnreach: true},
		{name: "HTTP 500 without error", reply: reply{500, `{"result":"x","error":null,"id":1}`}, wantUnreach: true},
		{name: "empty 200 (btcd quirk)", reply: reply{200, ""}, wantUnreach: true},
		{name: "garbage", reply: reply{200, "<html>hello</html>"}, wantUnreach: true},
		{name: "no result nor error", reply: reply{200, `{"id":1}`}, wantUnreach: true},
		{name: "malformed error", reply: reply{500, `{"result":null,"error":"boom","id":1}`}, wantUnreach: true},
		{name: "null result", reply: ok("null"), wantUnreach: true},
		{name: "short hash", reply: ok(`"abcd"`), wantUnreach: true},
		{name: "non-hex hash", reply: ok(quoted(strings.Repeat("zz", 32))), wantUnreach: true},
		{name: "wrong result type", reply: ok(`{"a":1}`), wantUnreach: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			node := newFakeNode(t, tc.reply)
			_, err := node.client(t, time.Second).BestBlockHash(t.Context())
			if err == nil {
				t.Fatal("BestBlockHash succeeded")
			}
			var rpcErr *bitcoind.RPCError
			isRPC := errors.As(err, &rpcErr)
			if tc.wantCode != 0 && (!isRPC || rpcErr.Code != tc.wantCode) {
				t.Errorf("error %v: want an RPCError with code %d", err, tc.wantCode)
			}
			if tc.wantCode == 0 && isRPC {
				t.Errorf("error %v is an RPCError, want none", err)
			}
			if got := bitcoind.IsUnreachable(err); got != tc.wantUnreach {
				t.Errorf("IsUnreachable(%v) = %v, want %v", err, got, tc.wantUnreach)
			}
			if got := errors.Is(err, bitcoind.ErrUnauthorized); got != tc.wantUnauth {
				t.Errorf("errors.Is(%v, ErrUnauthorized) = %v, want %v", err, got, tc.wantUnauth)
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	node := newFakeNode(t)
	c := node.client(t, 5*time.Second)
	node.srv.Close()
	start := time.Now()
	_, err := c.BestBlockHash(t.Context())
	if !bitcoind.IsUnreachable(err) {
		t.Fatalf("BestBlockHash on a closed port: %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refused connection took %v to report", d)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a hung node: answers only when the client gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := serverClient(t, srv, 50*time.Millisecond)

	_, err := c.BestBlockHash(t.Context())
	if !bitcoind.IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung node: %v, want ErrUnreachable wrapping DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.BestBlockHash(ctx)
	if !errors.Is(err, context.Canceled) || bitcoind.IsUnreachable(err) {
		t.Errorf("cancelled call: %v, want context.Canceled and not ErrUnreachable", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []bitcoind.Config{
		{Host: "localhost"},
		{Host: "http://localhost:8332"},
		{Host: ""},
		{Host: "localhost:8332", Timeout: -time.Second},
	} {
		if _, err := bitcoind.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestRequestForms pins the parameter forms that both btcd and bitcoind accept.
func TestRequestForms(t *testing.T) {
	t.Parallel()
	genesis := chaincfg.RegressionNetParams.GenesisBlock
	genesisHash := genesis.BlockHash()
	var headerBuf, blockBuf, txBuf bytes.Buffer
	if err := genesis.Header.Serialize(&headerBuf); err != nil {
		t.Fatal(err)
	}
	if err := genesis.Serialize(&blockBuf); err != nil {
		t.Fatal(err)
	}
	tx := genesis.Transactions[0]
	if err := tx.Serialize(&txBuf); err != nil {
		t.Fatal(err)
	}
	txid := tx.TxHash()
	hashJSON := quoted(genesisHash.String())

	for _, tc := range []struct {
		name       string
		reply      reply
		call       func(context.Context, *bitcoind.Client) error
		wantMethod string
		wantParams string
	}{
		{
			name: "ChainName", reply: ok(`{"chain":"mainnet","pruned":false}`), wantMethod: "getblockchaininfo", wantParams: `[]`,
			call: func(ctx context.Context, c *bitcoind.Client) error {
				name, err := c.ChainName(ctx)
				if err == nil && name != "main" {
					t.Errorf("ChainName = %q, want btcd's mainnet as main", name)
				}
				return err
			},
		},
		{
			name: "PruneHeight", reply: ok(`{"chain":"main","pruned":true,"pruneheight":1234}`), wantMethod: "getblockchaininfo", wantParams: `[]`,
			call: func(ctx context.Context, c *bitcoind.Client) error {
				h, pruned, err := c.PruneHeight(ctx)
				if err == nil && (h != 1234 || !pruned) {
					t.Errorf("PruneHeight = %d, %v; want 1234, true", h, pruned)
				}
				return err
			},
		},
		{
			name: "BlockHash", reply: ok(hashJSON), wantMethod: "getblockhash", wantParams: `[7]`,
			call: func(ctx context.Context, c *bitcoind.Client) error {
				h, err := c.BlockHash(ctx, 7)
				if err == nil && h != genesisHash {
					t.Errorf("BlockHash = %s, want %s", h, genesisHash)
				}
				return err
			},
		},
		{
			name: "BlockHeader", reply: ok(quoted(hex.EncodeToString(headerBuf.Bytes()))), wantMethod: "getblockheader",
			wantParams: `[` + hashJSON + `,false]`,
			call: func(ctx context.Context, c *bitcoind.Client) error {
				hdr, err := c.BlockHeader(ctx, genesisHash)
				if err == nil && hdr.BlockHash() != genesisHash {
					t.Errorf("BlockHeader hash = %s", hdr.BlockHash())
				}
				return err
			},
		},
		{
			name: "Block", reply: ok(quoted(hex.EncodeToString(blockBuf.Bytes()))), wantMethod: "getblock",
			wantParams: `[` + hashJSON + `,0]`,
			call: func(ctx context.Context, c *bitcoind.Client) error {
				b, err := c.Block(ctx, genesisHash)
				if err == nil && (b.BlockHash() != genesisHash || len(b.Transactions) != 1) {
					t.Errorf("Block = %s with %d txs", b.BlockHash(), len(b.Transactions))
				}
				return err
			},
		},
		{
			name: "BlockHeight", reply: ok(`{"hash":` + hashJSON + `,"height":42}`), wantMethod: "getblockheader",
			wantParams: `[` + hashJSON + `,true]`,
			call: func(ctx context.Context, c *bitcoind.Client) error {
				h, err := c.BlockHeight(ctx, genesisHash)
				if err == nil && h != 42 {
					t.Errorf("BlockHeight = %d, want 42", h)
				}
				return err
			},
		},
		{
			name: "SendRawTransaction", reply: ok(quoted(txid.String())), wantMethod: "sendrawtransaction",
			wantParams: `[` + quoted(hex.EncodeToString(txBuf.Bytes())) + `,0]`,
			call: func(ctx context.Context, c *bitcoind.Client) error {
				got, err := c.SendRawTransaction(ctx, tx)
				if err == nil && got != txid {
					t.Errorf("SendRawTransaction = %s, want %s", got, txid)
				}
				return err
			},
		},
		{
			name: "RawTransactionInfo mempool", reply: ok(`{"txid":` + quoted(txid.String()) + `}`), wantMethod: "getrawtransaction",
			wantParams: `[` + quoted(txid.String()) + `,1]`,
			call: func(ctx context.Context, c *bitcoind.Client) error {
				inMempool, block, err := c.RawTransactionInfo(ctx, txid)
				if err == nil && (!inMempool || block != nil) {
					t.Errorf("RawTransactionInfo = %v, %v; want true, nil", inMempool, block)
				}
				return err
			},
		},
		{
			name: "RawTransactionInfo confirmed", reply: ok(`{"blockhash":` + hashJSON + `,"confirmations":3}`), wantMethod: "getrawtransaction",
			wantParams: `[` + quoted(txid.String()) + `,1]`,
			call: func(ctx context.Context, c *bitcoind.Client) error {
				inMempool, block, err := c.RawTransactionInfo(ctx, txid)
				if err == nil && (inMempool || block == nil || *block != genesisHash) {
					t.Errorf("RawTransactionInfo = %v, %v; want false, %s", inMempool, block, genesisHash)
				}
				return err
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			node := newFakeNode(t, tc.reply)
			if err := tc.call(t.Context(), node.client(t, time.Second)); err != nil {
				t.Fatalf("call failed: %v", err)
			}
			req := node.lastRequest(t)
			params, err := json.Marshal(req.Params)
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != tc.wantMethod || string(params) != tc.wantParams {
				t.Errorf("request %s %s, want %s %s", req.Method, params, tc.wantMethod, tc.wantParams)
			}
			// btcd answers a request without "jsonrpc" with an empty body.
			if req.JSONRPC != "1.0" || req.user != "u" || req.pass != "p" {
				t.Errorf("request jsonrpc=%q auth=%q:%q", req.JSONRPC, req.user, req.pass)
			}
		})
	}
}

func TestResultChecks(t *testing.T) {
	t.Parallel()
	genesis := chaincfg.RegressionNetParams.GenesisBlock
	var blockBuf bytes.Buffer
	if err := genesis.Serialize(&blockBuf); err != nil {
		t.Fatal(err)
	}
	other := chainhash.Hash{1}
	for _, tc := range []struct {
		name  string
		reply reply
		call  func(context.Context, *bitcoind.Client) error
	}{
		{"header of another block", ok(quoted(hex.EncodeToString(blockBuf.Bytes()[:wire.MaxBlockHeaderPayload]))),
			func(ctx context.Context, c *bitcoind.Client) error { _, err := c.BlockHeader(ctx, other); return err }},
		{"header too long", ok(quoted(hex.EncodeToString(blockBuf.Bytes()))),
			func(ctx context.Context, c *bitcoind.Client) error {
				_, err := c.BlockHeader(ctx, genesis.BlockHash())
				return err
			}},
		{"block of another hash", ok(quoted(hex.EncodeToString(blockBuf.Bytes()))),
			func(ctx context.Context, c *bitcoind.Client) error { _, err := c.Block(ctx, other); return err }},
		{"block with trailing bytes", ok(quoted(hex.EncodeToString(blockBuf.Bytes()) + "00")),
			func(ctx context.Context, c *bitcoind.Client) error {
				_, err := c.Block(ctx, genesis.BlockHash())
				return err
			}},
		{"truncated block", ok(quoted(hex.EncodeToString(blockBuf.Bytes()[:100]))),
			func(ctx context.Context, c *bitcoind.Client) error {
				_, err := c.Block(ctx, genesis.BlockHash())
				return err
			}},
		{"negative height", ok(`{"height":-1}`),
			func(ctx context.Context, c *bitcoind.Client) error { _, err := c.BlockHeight(ctx, other); return err }},
		{"missing height", ok(`{}`),
			func(ctx context.Context, c *bitcoind.Client) error { _, err := c.BlockHeight(ctx, other); return err }},
		{"empty chain name", ok(`{"pruned":false}`),
			func(ctx context.Context, c *bitcoind.Client) error { _, err := c.ChainName(ctx); return err }},
		{"bad block hash in tx info", ok(`{"blockhash":"00"}`),
			func(ctx context.Context, c *bitcoind.Client) error {
				_, _, err := c.RawTransactionInfo(ctx, other)
				return err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			node := newFakeNode(t, tc.reply)
			err := tc.call(t.Context(), node.client(t, time.Second))
			if !bitcoind.IsUnreachable(err) {
				t.Fatalf("error = %v, want ErrUnreachable for an unusable answer", err)
			}
		})
	}
}
