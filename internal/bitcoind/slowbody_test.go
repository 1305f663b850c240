package bitcoind_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/bitcoind"
)

// bigBlock is a block whose getblock answer is a few hundred kB, with its hash.
func bigBlock(t *testing.T) (*wire.MsgBlock, []byte) {
	t.Helper()
	genesis := chaincfg.RegressionNetParams.GenesisBlock
	block := &wire.MsgBlock{Header: genesis.Header, Transactions: []*wire.MsgTx{genesis.Transactions[0]}}
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(chaincfg.RegressionNetParams.GenesisHash, 0), nil, nil))
	tx.AddTxOut(wire.NewTxOut(1, bytes.Repeat([]byte{0x6a}, 200_000)))
	block.Transactions = append(block.Transactions, tx)
	var buf bytes.Buffer
	if err := block.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"result":"` + hex.EncodeToString(buf.Bytes()) + `","error":null,"id":1}`)
	return block, body
}

// trickle writes body in chunks every gap, then stops (or, with hangAfter > 0, hangs after
// that many bytes until the client gives up).
func trickle(body []byte, chunk int, gap time.Duration, hangAfter int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		flusher := w.(http.Flusher)
		for off := 0; off < len(body); off += chunk {
			if hangAfter > 0 && off >= hangAfter {
				<-r.Context().Done()
				return
			}
			end := min(off+chunk, len(body))
			if _, err := w.Write(body[off:end]); err != nil {
				return
			}
			flusher.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(gap):
			}
		}
	}
}

// A big answer that keeps arriving is not a dead node, however long it takes as a whole: with
// the per-call timeout bounding the whole call, a block bitcoind sends more slowly than that
// (a remote node on a slow link, a 4 MB block is 8 MB of hex) failed on every poll, and the
// tower never got past it. The timeout bounds each wait for data instead.
func TestSlowButSteadyAnswerCompletes(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	block, body := bigBlock(t)
	// At least 2 s in all (sleeps are never shorter), with a gap of 5 ms between chunks.
	chunk := len(body)/400 + 1
	srv := httptest.NewServer(trickle(body, chunk, 5*time.Millisecond, 0))
	t.Cleanup(srv.Close)
	c := serverClient(t, srv, timeout)
	start := time.Now()
	got, err := c.Block(t.Context(), block.BlockHash())
	if err != nil {
		t.Fatalf("Block after %v: %v", time.Since(start), err)
	}
	if got.BlockHash() != block.BlockHash() || len(got.Transactions) != 2 {
		t.Fatalf("Block = %s with %d txs", got.BlockHash(), len(got.Transactions))
	}
	if took := time.Since(start); took < 2*timeout {
		t.Fatalf("the answer took %v, the test needs more than %v", took, 2*timeout)
	}
}

// An answer that stops halfway is a dead node once the timeout passes without data.
func TestAnswerStoppingHalfwayTimesOut(t *testing.T) {
	t.Parallel()
	block, body := bigBlock(t)
	srv := httptest.NewServer(trickle(body, 4096, time.Millisecond, len(body)/2))
	t.Cleanup(srv.Close)
	c := serverClient(t, srv, 100*time.Millisecond)
	_, err := c.Block(t.Context(), block.BlockHash())
	if !bitcoind.IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("answer stopped halfway: %v, want ErrUnreachable wrapping DeadlineExceeded", err)
	}
}

// A node that never stops sending is still given up on: a call as a whole is bounded too.
func TestEndlessAnswerEnds(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"result":"`))
		for {
			if _, err := w.Write([]byte("00")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(srv.Close)
	c := serverClient(t, srv, 50*time.Millisecond)
	_, err := c.BestBlockHash(t.Context())
	if !bitcoind.IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("endless answer: %v, want ErrUnreachable wrapping DeadlineExceeded", err)
	}
}

// serverClient is a client of the node srv, closed when the test ends.
func serverClient(t *testing.T, srv *httptest.Server, timeout time.Duration) *bitcoind.Client {
	t.Helper()
	c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
