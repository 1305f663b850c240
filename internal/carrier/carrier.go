// Package carrier broadcasts transactions and looks them up in bitcoind's mempool. It sorts
// bitcoind's answers into the statuses the responder acts on (rust-teos carrier.rs).
//
// Unlike rust-teos, the carrier never blocks while bitcoind is unreachable: a transport
// failure comes back as an error, and the caller retries on its next block or poll. Nothing
// then waits on a dead node while holding a lock.
package carrier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

// rpcError is a JSON-RPC error answered by the node (bitcoind.RPCError has it): the node was
// reached and said no.
type rpcError interface {
	error
	RPCCode() int
}

// rpcMessager is a JSON-RPC error whose node message can be read apart from the code
// (bitcoind.RPCError has it); without it the carrier reads Error().
type rpcMessager interface{ RPCMessage() string }

// unreachableError is a node that could not be used (bitcoind.ErrUnreachable has it).
type unreachableError interface{ Unreachable() bool }

// isUnreachable tells a transport failure from an answer, by behaviour.
func isUnreachable(err error) bool {
	var u unreachableError
	return errors.As(err, &u) && u.Unreachable()
}

// bitcoind's JSON-RPC codes that decide a broadcast's status (rpc/protocol.h).
const (
	CodeVerifyError          = -25
	CodeVerifyRejected       = -26
	CodeDeserializationError = -22
	CodeVerifyAlreadyInChain = -27
	// CodeUnknown stands for every other failure (rust-teos UNKNOWN_JSON_RPC_EXCEPTION).
	CodeUnknown = -257
)

// Status is what became of a broadcast.
type Status int

const (
	// StatusInMempool: bitcoind accepted the transaction, or already had it in its mempool.
	StatusInMempool Status = iota + 1
	// StatusIrrevocablyResolved: the transaction is already in the chain (code -27).
	StatusIrrevocablyResolved
	// StatusRejected: bitcoind refused it; Result.Code says why.
	StatusRejected
	// StatusRefusedForNow: bitcoind refused it (-26) for a reason that passes by itself (its
	// mempool's minimum fee rose, the mempool is full, chain limits): send it again later.
	// Result.Reason has bitcoind's message.
	StatusRefusedForNow
)

func (s Status) String() string {
	switch s {
	case StatusInMempool:
		return "in_mempool"
	case StatusIrrevocablyResolved:
		return "irrevocably_resolved"
	case StatusRejected:
		return "rejected"
	case StatusRefusedForNow:
		return "refused_for_now"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Result is a broadcast's outcome.
type Result struct {
	Status Status
	// Code is bitcoind's error code when Status is StatusRejected: -26, -25, -22, or
	// CodeUnknown for anything else; -26 with StatusRefusedForNow.
	Code int
	// Reason is the node's message for a refusal.
	Reason string
}

// Client is the part of bitcoind the carrier calls; *bitcoind.Client satisfies it. Its errors
// say what they are by behaviour: RPCCode() int for a node's refusal, Unreachable() bool for
// a node that could not be used.
type Client interface {
	SendRawTransaction(ctx context.Context, tx *wire.MsgTx) (chainhash.Hash, error)
	RawTransactionInfo(ctx context.Context, txid chainhash.Hash) (inMempool bool, blockHash *chainhash.Hash, err error)
	BestBlockHash(ctx context.Context) (chainhash.Hash, error)
	BlockHeight(ctx context.Context, hash chainhash.Hash) (uint32, error)
	BlockHash(ctx context.Context, height uint32) (chainhash.Hash, error)
	Block(ctx context.Context, hash chainhash.Hash) (*wire.MsgBlock, error)
}

// Carrier sends transactions through a Client. It is safe for concurrent use.
type Carrier struct {
	client Client
	log    *slog.Logger

	mu    sync.Mutex
	cache map[chainhash.Hash]Result // guarded by mu
	// blocks holds the txids of the last blocks InBlockAt fetched, by block hash (a block's
	// content never changes): a block in which many penalties get -25 is fetched once, not
	// once per penalty. Guarded by mu.
	blocks []cachedBlock
}

// cachedBlocks is how many fetched blocks InBlockAt keeps.
const cachedBlocks = 4

type cachedBlock struct {
	hash  chainhash.Hash
	txids map[chainhash.Hash]struct{}
}

// New returns a carrier that talks to bitcoind through c. A nil log discards messages.
func New(c Client, log *slog.Logger) *Carrier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Carrier{client: c, log: log.With("component", "carrier"), cache: make(map[chainhash.Hash]Result)}
}

// Send broadcasts tx with sendrawtransaction and maps the answer (docs/PROTOCOL.md 8.4):
//
//	success                  StatusInMempool
//	-27 already in chain     StatusIrrevocablyResolved
//	-26 passing reason       StatusRefusedForNow (see passingReasons)
//	-26, -25, -22            StatusRejected with that code
//	other RPC or odd errors  StatusRejected with CodeUnknown
//
// One deliberate difference: a -26 for a transaction that is in the mempool is reported as
// StatusInMempool. btcd answers -26 "already have transaction" where bitcoind answers success,
// and a responder must not drop a penalty for being broadcast twice.
//
// A transport failure (an error whose Unreachable() is true) or a cancelled ctx is returned as an error,
// without waiting; it is never a rejection. A result is cached per txid, and returned without
// asking bitcoind again, until ClearCache.
func (c *Carrier) Send(ctx context.Context, tx *wire.MsgTx) (Result, error) {
	if tx == nil {
		return Result{}, errors.New("send: nil transaction")
	}
	txid := tx.TxHash()
	c.mu.Lock()
	res, ok := c.cache[txid]
	c.mu.Unlock()
	if ok {
		return res, nil
	}

	res, err := c.send(ctx, txid, tx)
	if err != nil {
		return Result{}, err
	}
	c.mu.Lock()
	c.cache[txid] = res
	c.mu.Unlock()
	return res, nil
}

func (c *Carrier) send(ctx context.Context, txid chainhash.Hash, tx *wire.MsgTx) (Result, error) {
	_, err := c.client.SendRawTransaction(ctx, tx)
	if err == nil {
		c.log.Debug("transaction broadcast", "txid", txid)
		return Result{Status: StatusInMempool}, nil
	}
	if err := c.transportError(ctx, err); err != nil {
		return Result{}, fmt.Errorf("send %s: %w", txid, err)
	}
	var rpcErr rpcError
	if !errors.As(err, &rpcErr) {
		c.log.Warn("broadcast failed", "txid", txid, "err", err)
		return Result{Status: StatusRejected, Code: CodeUnknown}, nil
	}
	code := rpcErr.RPCCode()
	reason := rpcErr.Error()
	var m rpcMessager
	if errors.As(err, &m) {
		reason = m.RPCMessage()
	}
	switch code {
	case CodeVerifyAlreadyInChain:
		c.log.Debug("transaction already in chain", "txid", txid)
		return Result{Status: StatusIrrevocablyResolved}, nil
	case CodeVerifyRejected:
		in, mined, err := c.lookUp(ctx, txid)
		if err == nil && mined != nil {
			// With -txindex, bitcoind still names the block of a transaction whose block left
			// the chain: only a block of the best chain holds it (e.g. a reorged penalty now
			// outbid by a conflicting transaction is refused, not in the chain).
			var inChain bool
			if inChain, err = c.InBestChain(ctx, *mined); err == nil && !inChain {
				mined = nil
			}
		}
		if err != nil {
			return Result{}, fmt.Errorf("send %s: %w", txid, err)
		}
		if in {
			c.log.Debug("transaction already in mempool", "txid", txid)
			return Result{Status: StatusInMempool}, nil
		}
		if mined != nil {
			// btcd's "already have transaction", and the miner took it from the mempool
			// before the look-up: the transaction is in the chain, not rejected.
			c.log.Debug("transaction mined between the broadcast and the look-up", "txid", txid)
			return Result{Status: StatusIrrevocablyResolved}, nil
		}
		if Passing(reason) {
			// The caller logs it, once per attempt.
			c.log.Debug("transaction refused for now", "txid", txid, "reason", reason)
			return Result{Status: StatusRefusedForNow, Code: code, Reason: reason}, nil
		}
		fallthrough
	case CodeVerifyError, CodeDeserializationError:
		c.log.Debug("transaction rejected", "txid", txid, "code", code, "reason", reason)
		return Result{Status: StatusRejected, Code: code, Reason: reason}, nil
	}
	c.log.Warn("transaction rejected with an unexpected code", "txid", txid, "code", code, "reason", reason)
	return Result{Status: StatusRejected, Code: CodeUnknown, Reason: reason}, nil
}

// passingReasons are -26 reject reasons that pass without the transaction changing: a later
// send of the same transaction can succeed. Every other -26 stays final, as in rust-teos.
var passingReasons = []string{
	// Bitcoin Core (validation.cpp, txmempool.cpp).
	"mempool min fee not met", // the dynamic minimum, raised while the mempool is full
	"mempool full",            // accepted, then evicted at once by the size limit
	"too-long-mempool-chain",  // ancestor/descendant count or size limits
	"too-large-cluster",       // cluster limits of the cluster mempool (v30+)
	"package-mempool-limits",  // the package form of the limits above
	"non-BIP68-final",         // a relative timelock that later blocks satisfy
	"non-final",               // an absolute timelock, likewise
	// btcd (mempool/mempool.go): a free transaction's priority grows as its inputs age, and
	// the free-relay rate limit decays over minutes.
	"insufficient priority",
	"rejected by the rate limiter",
	// btcd's words for bitcoind's non-BIP68-final and non-final (mempool/mempool.go, policy.go).
	"sequence locks on inputs not met",
	"transaction is not finalized",
}

// Passing reports whether a -26 reject reason passes by itself (passingReasons), so the
// transaction is worth sending again later. Unknown text is final.
func Passing(reason string) bool {
	for _, p := range passingReasons {
		if strings.Contains(reason, p) {
			return true
		}
	}
	return false
}

// InMempool reports whether txid is in bitcoind's mempool: getrawtransaction finds it and it
// has no block hash. A JSON-RPC error (-5 unknown txid, or any other) means false; a transport
// failure or a cancelled ctx is returned as an error.
func (c *Carrier) InMempool(ctx context.Context, txid chainhash.Hash) (bool, error) {
	in, _, err := c.lookUp(ctx, txid)
	return in, err
}

// lookUp says whether bitcoind has txid in its mempool or in a block, as InMempool.
func (c *Carrier) lookUp(ctx context.Context, txid chainhash.Hash) (inMempool bool, block *chainhash.Hash, err error) {
	in, block, err := c.client.RawTransactionInfo(ctx, txid)
	if err == nil {
		return in, block, nil
	}
	var rpcErr rpcError
	if errors.As(err, &rpcErr) {
		return false, nil, nil
	}
	if terr := c.transportError(ctx, err); terr != nil {
		return false, nil, fmt.Errorf("look up %s: %w", txid, terr)
	}
	// Neither an RPC nor a transport error: treat as a node we cannot use, not as "absent".
	return false, nil, fmt.Errorf("look up %s: %w", txid, err)
}

// Tip returns the hash and height of bitcoind's best block. Any failure is an error: the
// caller decides nothing without the answer.
func (c *Carrier) Tip(ctx context.Context) (chainhash.Hash, uint32, error) {
	hash, err := c.client.BestBlockHash(ctx)
	if err != nil {
		return chainhash.Hash{}, 0, fmt.Errorf("best block: %w", err)
	}
	height, err := c.client.BlockHeight(ctx, hash)
	if err != nil {
		return chainhash.Hash{}, 0, fmt.Errorf("height of best block %s: %w", hash, err)
	}
	return hash, height, nil
}

// InBlockAt reports whether bitcoind's best chain holds txid in its block at height: false
// when the chain is not that long (getblockhash answers an RPC error). Any other failure is an
// error.
func (c *Carrier) InBlockAt(ctx context.Context, txid chainhash.Hash, height uint32) (bool, error) {
	hash, err := c.client.BlockHash(ctx, height)
	if err != nil {
		var rpcErr rpcError
		if errors.As(err, &rpcErr) && c.transportError(ctx, err) == nil {
			return false, nil
		}
		return false, fmt.Errorf("block at %d: %w", height, err)
	}
	txids, err := c.blockTxids(ctx, hash)
	if err != nil {
		return false, fmt.Errorf("block %s at %d: %w", hash, height, err)
	}
	_, in := txids[txid]
	return in, nil
}

// blockTxids returns the txids of the block hash, fetched once while it stays among the last
// cachedBlocks asked about.
func (c *Carrier) blockTxids(ctx context.Context, hash chainhash.Hash) (map[chainhash.Hash]struct{}, error) {
	c.mu.Lock()
	for _, b := range c.blocks {
		if b.hash == hash {
			c.mu.Unlock()
			return b.txids, nil
		}
	}
	c.mu.Unlock()
	block, err := c.client.Block(ctx, hash)
	if err != nil {
		return nil, err
	}
	txids := make(map[chainhash.Hash]struct{}, len(block.Transactions))
	for _, tx := range block.Transactions {
		txids[tx.TxHash()] = struct{}{}
	}
	c.mu.Lock()
	if len(c.blocks) == cachedBlocks {
		c.blocks = append(c.blocks[:0], c.blocks[1:]...)
	}
	c.blocks = append(c.blocks, cachedBlock{hash: hash, txids: txids})
	c.mu.Unlock()
	return txids, nil
}

// InBestChain reports whether the block hash is in bitcoind's best chain: its height, and the
// best chain's block at that height. An RPC error means no (an unknown block; btcd's answer for
// a block off the best chain); any other failure is an error.
func (c *Carrier) InBestChain(ctx context.Context, hash chainhash.Hash) (bool, error) {
	height, err := c.client.BlockHeight(ctx, hash)
	if err == nil {
		var at chainhash.Hash
		if at, err = c.client.BlockHash(ctx, height); err == nil {
			return at == hash, nil
		}
	}
	var rpcErr rpcError
	if errors.As(err, &rpcErr) && c.transportError(ctx, err) == nil {
		return false, nil
	}
	return false, fmt.Errorf("look up block %s: %w", hash, err)
}

// ClearCache forgets every cached Send result; the responder calls it after each block and
// before each hand-over.
func (c *Carrier) ClearCache() {
	c.mu.Lock()
	clear(c.cache)
	c.mu.Unlock()
}

// transportError returns err (non-nil) when it means "try again later" rather than an answer
// from the node: the caller gave up (ctx), or bitcoind could not be reached. The bitcoind
// client owns and logs reachability; the carrier only passes the failure on.
func (c *Carrier) transportError(ctx context.Context, err error) error {
	if isUnreachable(err) {
		return err
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
