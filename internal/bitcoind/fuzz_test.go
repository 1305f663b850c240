package bitcoind_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
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
	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/chain"
)

// scriptedReply is what the fuzz node answers next; one fuzz worker runs one input at a time.
type scriptedReply struct {
	mu     sync.Mutex
	status int
	body   []byte
}

func (s *scriptedReply) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func (s *scriptedReply) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	status, body := s.status, s.body
	s.mu.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// checkKind asserts the package's error contract: nil, an *RPCError, or ErrUnreachable.
func checkKind(t *testing.T, method string, status int, body []byte, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var rpcErr *bitcoind.RPCError
	if errors.As(err, &rpcErr) == bitcoind.IsUnreachable(err) {
		t.Fatalf("%s: HTTP %d %q: error %v is neither (only) an RPCError nor ErrUnreachable", method, status, body, err)
	}
}

// FuzzResponse answers every RPC the tower makes with arbitrary bytes and an arbitrary HTTP
// status, as a broken or hostile node could, and runs the answer through the client and
// through the chain monitor and the carrier (which classifies sendrawtransaction's errors). Neither may panic or
// hang, and every error must be of the documented kind. The status is fuzzed as status-100
// (see the mapping below); testdata/fuzz/FuzzResponse holds real btcd and bitcoind replies.
func FuzzResponse(f *testing.F) {
	genesis := chaincfg.RegressionNetParams.GenesisBlock
	genesisHash := genesis.BlockHash()
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, `{"result":"` + genesisHash.String() + `","error":null,"id":1}`},
		{200, `{"result":{"chain":"regtest","pruned":true,"pruneheight":5,"height":7,"blockhash":"` + genesisHash.String() + `"},"error":null}`},
		{200, `{"result":"` + hexOf(f, genesis) + `","error":null}`},
		{200, `{"result":"0100","error":null}`},
		{500, `{"result":null,"error":{"code":-26,"message":"txn-mempool-conflict"}}`},
		{500, `{"result":null,"error":{"code":-27,"message":"already in chain"}}`},
		{500, `{"result":null,"error":{"code":-28,"message":"warming up"}}`},
		{500, `{"result":null,"error":{"code":-3,"message":"Expected type bool, got number"}}`},
		{404, `{"result":null,"error":{"code":"x"}}`},
		{401, ``},
		{200, `{"result":{"pruned":true,"pruneheight":-1},"error":null}`},
		{200, `{"result":{"height":4294967296},"error":null}`},
		{200, `[]`},
		{200, `{"result":"` + strings.Repeat("0", 160) + `"}`},
	} {
		f.Add(uint16(s.status), []byte(s.body))
	}

	reply := &scriptedReply{}
	srv := httptest.NewServer(reply)
	f.Cleanup(srv.Close)
	client, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Timeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(client.Close)
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(&wire.TxIn{})
	tx.AddTxOut(&wire.TxOut{Value: 1})

	f.Fuzz(func(t *testing.T, status uint16, body []byte) {
		code := 100 + int(status)%500 // net/http refuses statuses outside 100-599
		if code < 200 {
			code += 100 // 1xx are informational and never final
		}
		reply.set(code, body)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h := genesisHash

		_, err := client.ChainName(ctx)
		checkKind(t, "ChainName", code, body, err)
		_, _, err = client.PruneHeight(ctx)
		checkKind(t, "PruneHeight", code, body, err)
		_, err = client.BestBlockHash(ctx)
		checkKind(t, "BestBlockHash", code, body, err)
		_, err = client.BlockHash(ctx, 1)
		checkKind(t, "BlockHash", code, body, err)
		_, err = client.BlockHeader(ctx, h)
		checkKind(t, "BlockHeader", code, body, err)
		_, err = client.Block(ctx, h)
		checkKind(t, "Block", code, body, err)
		_, err = client.BlockHeight(ctx, h)
		checkKind(t, "BlockHeight", code, body, err)
		_, err = client.SendRawTransaction(ctx, tx)
		checkKind(t, "SendRawTransaction", code, body, err)
		inMempool, blockHash, err := client.RawTransactionInfo(ctx, chainhash.Hash{})
		checkKind(t, "RawTransactionInfo", code, body, err)
		if err == nil && inMempool == (blockHash != nil) {
			t.Fatalf("RawTransactionInfo: inMempool %v with block %v", inMempool, blockHash)
		}

		// The chain monitor only sees the client's typed results: loading its window below a
		// tip and one poll must fail with the client's error kinds, or succeed.
		if mon, err := chain.New(ctx, chain.Config{Source: client, Store: discardTip{}, IsTransient: bitcoind.IsUnreachable}, h, 3); err != nil {
			checkKind(t, "chain.New", code, body, err)
		} else if err := mon.Poll(ctx); err != nil {
			var rpcErr *bitcoind.RPCError
			if !bitcoind.IsUnreachable(err) && !errors.As(err, &rpcErr) && !strings.Contains(err.Error(), "shares no block") &&
				!strings.Contains(err.Error(), "behind the tower") {
				t.Fatalf("chain poll: HTTP %d %q: unexpected error %v", code, body, err)
			}
		}

		res, err := carrier.New(client, nil).Send(ctx, tx)
		if err != nil {
			if !bitcoind.IsUnreachable(err) {
				t.Fatalf("carrier: HTTP %d %q: error %v is not ErrUnreachable", code, body, err)
			}
			return
		}
		switch res.Status {
		case carrier.StatusInMempool, carrier.StatusIrrevocablyResolved:
		case carrier.StatusRefusedForNow:
			if res.Code != carrier.CodeVerifyRejected {
				t.Fatalf("carrier: refused for now with code %d", res.Code)
			}
		case carrier.StatusRejected:
			switch res.Code {
			case carrier.CodeVerifyRejected, carrier.CodeVerifyError, carrier.CodeDeserializationError, carrier.CodeUnknown:
			default:
				t.Fatalf("carrier: rejected with code %d", res.Code)
			}
		default:
			t.Fatalf("carrier: status %v", res.Status)
		}
	})
}

type discardTip struct{}

func (discardTip) SetLastBlock(chainhash.Hash, uint32) error { return nil }

func hexOf(f *testing.F, b *wire.MsgBlock) string {
	var buf bytes.Buffer
	if err := b.Serialize(&buf); err != nil {
		f.Fatal(err)
	}
	return hex.EncodeToString(buf.Bytes())
}
