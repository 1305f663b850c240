// Package bitcoind is the tower's JSON-RPC client for bitcoind, or btcd in tests.
//
// It speaks only the subset of RPCs and parameter forms that both nodes accept (docs/BTCD.md
// §3): verbosity as an int for getblock and getrawtransaction but a bool for getblockheader
// (the only forms btcd takes), raw headers and blocks decoded locally, and sendrawtransaction
// with no fee rate cap, in whichever form the node takes (sendraw.go).
//
// Every error is one of two kinds, told apart by behaviour (errors.As on a small interface,
// as with net.Error) so callers need not import this package. A node that answered with a
// JSON-RPC error gives a *RPCError, which has RPCCode() int. Anything else (connection
// refused, timeout, an HTTP or body the client cannot use) wraps ErrUnreachable, which has
// Unreachable() bool. Wrong credentials also wrap ErrUnauthorized (Unauthorized() bool), so an
// operator can be told, but stay unreachable: bitcoind rewrites its cookie on every restart,
// and a tower must keep its trackers rather than treat the refusal as a rejected transaction.
// A call whose ctx the caller cancels returns an error wrapping ctx.Err() and not
// ErrUnreachable; Config.Timeout passing without a byte from the node, or a call outlasting
// ten times it, is ErrUnreachable wrapping context.DeadlineExceeded.
//
// The Client is also the one owner of bitcoind's reachability: every call's outcome updates
// it, each change is logged once, and Config.OnReachability hears of it.
//
// The HTTP transport is our own rather than rpcclient's. rpcclient (v0.24.2) in HTTP POST
// mode sends all calls through one goroutine with no HTTP timeout, retries a refused
// connection ten times over about 22 s, and reports HTTP 401 only as a formatted string.
// A hung node would then block every call, and callers could not cancel.
package bitcoind

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcjson"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

// DefaultTimeout is Config.Timeout when it is zero.
const DefaultTimeout = 30 * time.Second

// maxCallTimeouts bounds a whole call, in Config.Timeouts: a big answer that keeps arriving
// may outlast one Timeout (a remote node on a slow link; a 4 MB block is 8 MB of hex), but not
// this many.
const maxCallTimeouts = 10

// maxResponseSize leaves room for a hex-encoded 4 MWU block plus the JSON envelope.
const maxResponseSize = 32 << 20

// JSON-RPC error codes a caller may want to switch on (bitcoind's rpc/protocol.h).
const (
	CodeMisc                 = -1  // btcd: block height out of range, unimplemented command
	CodeTypeError            = -3  // a parameter of the wrong type
	CodeInvalidAddressOrKey  = -5  // unknown txid or block
	CodeInvalidParameter     = -8  // bitcoind: block height out of range
	CodeDeserializationError = -22 // transaction could not be decoded
	CodeVerifyError          = -25 // missing or spent inputs, immature coinbase
	CodeVerifyRejected       = -26 // policy or consensus rejection, already in the mempool
	CodeVerifyAlreadyInChain = -27 // transaction already confirmed
	CodeInWarmup             = -28 // node still loading; reported as ErrUnreachable
	CodeMethodNotFound       = -32601
	CodeInvalidParams        = -32602
	CodeInternalError        = -32603 // btcd: verbose query on a block outside the main chain
)

var (
	// ErrUnreachable wraps every failure that is not a JSON-RPC error from the node.
	ErrUnreachable error = &kindError{msg: "bitcoind unreachable"}
	// ErrUnauthorized means the node refused the RPC credentials (HTTP 401 or 403). Such
	// errors also wrap ErrUnreachable.
	ErrUnauthorized error = &kindError{msg: "bitcoind refused the RPC credentials", auth: true}
	// ErrForbidden is bitcoind's HTTP 403, which is not about the credentials: the client's
	// address is outside its rpcallowip, or the method outside the user's rpcwhitelist. It
	// is also an ErrUnauthorized (errors.Is): the operator must act, the tower stays unreachable.
	ErrForbidden error = &kindError{msg: "bitcoind refused the call (HTTP 403): teosd's address is not allowed by " +
		"bitcoind's rpcallowip (with rpcbind), or the method by its rpcwhitelist", auth: true, forbidden: true}
)

// kindError is a sentinel with the behaviour methods callers check with errors.As.
type kindError struct {
	msg       string
	auth      bool
	forbidden bool
}

func (e *kindError) Error() string { return e.msg }

// Is makes ErrForbidden an ErrUnauthorized too.
func (e *kindError) Is(target error) bool { return e.forbidden && target == ErrUnauthorized }

// Unreachable is true: the node could not be used.
func (e *kindError) Unreachable() bool { return true }

// Unauthorized is true for a refusal of the credentials.
func (e *kindError) Unauthorized() bool { return e.auth }

// RPCError is a JSON-RPC error returned by the node.
type RPCError struct {
	Code    int
	Message string
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("bitcoind RPC error %d: %s", e.Code, e.Message)
}

// RPCCode is the JSON-RPC error code.
func (e *RPCError) RPCCode() int { return e.Code }

// RPCMessage is the node's message, e.g. a reject reason.
func (e *RPCError) RPCMessage() string { return e.Message }

// IsUnreachable reports whether err means the node could not be used, as opposed to the node
// answering with an error. It is true for ErrUnauthorized too.
func IsUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

// IsUnauthorized reports whether err is a refusal of the RPC credentials.
func IsUnauthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// Config says how to reach the node.
type Config struct {
	Host string // host:port
	User string // cookie auth: the cookie file's user part
	Pass string
	// Timeout bounds each wait for the node: connecting, its answer's first byte, and every
	// gap in the answer; a whole call, maxCallTimeouts times it. Zero means DefaultTimeout.
	Timeout time.Duration
	// Credentials, if set, is called on an HTTP 401/403 to read the credentials again (the
	// cookie file bitcoind rewrites on every start); the call is retried once if they changed.
	Credentials func() (user, pass string, err error)
	// Logger hears of reachability changes; nil discards.
	Logger *slog.Logger
	// OnReachability, if set, is called on every change of reachability, with the cause
	// when the node became unreachable. It must not call the Client.
	OnReachability func(reachable bool, cause error)
	// ProbeEvery > 0 makes the client call the node that often while it is unreachable, so
	// its return is seen even when nothing else calls; backing off up to maxRefusedProbe while
	// the node refuses the calls (HTTP 401/403).
	ProbeEvery time.Duration
}

// Client is safe for concurrent use.
type Client struct {
	url       string
	creds     atomic.Pointer[credentials]
	reload    func() (string, string, error)
	timeout   time.Duration
	http      *http.Client
	transport *http.Transport
	nextID    atomic.Uint64
	reach     reachability
	sendForm  atomic.Int32 // the sendForm the node last took (sendraw.go)
}

type credentials struct{ user, pass string }

// New checks cfg and returns a client. It does not contact the node.
func New(cfg Config) (*Client, error) {
	if _, _, err := net.SplitHostPort(cfg.Host); err != nil {
		return nil, fmt.Errorf("bitcoind host %q is not host:port: %w", cfg.Host, err)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("bitcoind timeout %v is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	transport := &http.Transport{
		Proxy:               nil, // the node is addressed directly, whatever HTTP_PROXY says
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		// Below bitcoind's 30 s rpcservertimeout, so we rarely reuse a connection it closed.
		IdleConnTimeout: 15 * time.Second,
	}
	c := &Client{
		url:       "http://" + cfg.Host + "/",
		reload:    cfg.Credentials,
		timeout:   cfg.Timeout,
		http:      &http.Client{Transport: transport},
		transport: transport,
	}
	c.creds.Store(&credentials{cfg.User, cfg.Pass})
	c.reach.init(cfg, c)
	return c, nil
}

// Close stops the probe and releases idle connections. Calls still running finish normally.
func (c *Client) Close() {
	c.reach.close()
	c.transport.CloseIdleConnections()
}

type request struct {
	JSONRPC string `json:"jsonrpc"` // btcd answers a request without it with an empty body
	ID      uint64 `json:"id"`
	Method  string `json:"method"`
	Params  []any  `json:"params"` // positional: btcd ignores named params
}

type response struct {
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// call runs one RPC and unmarshals its result into out, and records the outcome as bitcoind's
// reachability. A cancelled ctx gives an error that wraps ctx.Err() and not ErrUnreachable:
// the caller gave up, the node did not fail.
func (c *Client) call(ctx context.Context, out any, method string, params ...any) error {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(request{JSONRPC: "1.0", ID: c.nextID.Add(1), Method: method, Params: params})
	if err != nil {
		return fmt.Errorf("%s: encoding request: %w", method, err)
	}
	used := c.creds.Load()
	err = c.do(ctx, out, method, body, used)
	if IsUnauthorized(err) && c.reload != nil {
		// bitcoind wrote a new cookie when it restarted: read it again and retry once.
		if user, pass, rerr := c.reload(); rerr != nil {
			err = fmt.Errorf("%w (re-reading the credentials: %v)", err, rerr)
		} else if user != used.user || pass != used.pass {
			fresh := &credentials{user, pass}
			c.creds.CompareAndSwap(used, fresh)
			c.reach.log.Info("bitcoind credentials re-read after a refusal")
			err = c.do(ctx, out, method, body, fresh)
		}
	}
	c.reach.record(err)
	return err
}

// errStalled cancels a call whose node sent nothing for Config.Timeout.
var errStalled = errors.New("no data from the node")

// do sends one request with the given credentials. c.timeout bounds each wait for data rather
// than the whole call: a big answer arriving steadily but slowly is not a dead node, and
// bounding it as a whole failed the same block on every poll for ever.
func (c *Client) do(ctx context.Context, out any, method string, body []byte, creds *credentials) error {
	callCtx, cancel := context.WithTimeout(ctx, maxCallTimeouts*c.timeout)
	defer cancel()
	callCtx, stall := context.WithCancelCause(callCtx)
	defer stall(nil)
	idle := time.AfterFunc(c.timeout, func() { stall(errStalled) })
	defer idle.Stop()
	req, err := http.NewRequestWithContext(callCtx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(creds.user, creds.pass)

	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, callCtx, method, err)
	}
	defer resp.Body.Close()
	idle.Reset(c.timeout)
	raw, err := io.ReadAll(io.LimitReader(&progressReader{r: resp.Body, idle: idle, timeout: c.timeout}, maxResponseSize+1))
	if err != nil {
		return c.transportError(ctx, callCtx, method, err)
	}
	if resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, method, ErrForbidden)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%w: %s: %w (HTTP 401)", ErrUnreachable, method, ErrUnauthorized)
	}
	if len(raw) > maxResponseSize {
		return fmt.Errorf("%w: %s: response larger than %d bytes", ErrUnreachable, method, maxResponseSize)
	}
	// bitcoind reports RPC errors with HTTP 500 or 404 and a JSON body, so the body decides.
	var env response
	if err := json.Unmarshal(raw, &env); err != nil || (env.Result == nil && env.Error == nil) {
		return fmt.Errorf("%w: %s: HTTP %d with no JSON-RPC response: %q",
			ErrUnreachable, method, resp.StatusCode, truncate(raw))
	}
	if len(env.Error) > 0 && !bytes.Equal(env.Error, []byte("null")) {
		return rpcErrorFrom(method, env.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s: HTTP %d without an RPC error: %q",
			ErrUnreachable, method, resp.StatusCode, truncate(raw))
	}
	if err := json.Unmarshal(env.Result, out); err != nil {
		return fmt.Errorf("%w: %s: unexpected result %q: %w", ErrUnreachable, method, truncate(env.Result), err)
	}
	return nil
}

// transportError classifies a failed exchange: ctx is the caller's, callCtx the call's.
func (c *Client) transportError(ctx, callCtx context.Context, method string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
	if errors.Is(context.Cause(callCtx), errStalled) {
		return fmt.Errorf("%w: %s: no data from the node for %v: %w", ErrUnreachable, method, c.timeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnreachable, method, err)
}

// progressReader restarts the idle timer whenever data arrives.
type progressReader struct {
	r       io.Reader
	idle    *time.Timer
	timeout time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.idle.Reset(p.timeout)
	}
	return n, err
}

func rpcErrorFrom(method string, raw json.RawMessage) error {
	var e btcjson.RPCError
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("%w: %s: malformed RPC error %q: %w", ErrUnreachable, method, truncate(raw), err)
	}
	if e.Code == CodeInWarmup {
		// The node is up but cannot serve yet: callers should wait, not give up on a tx.
		return fmt.Errorf("%w: %s: node warming up: %s", ErrUnreachable, method, e.Message)
	}
	return fmt.Errorf("%s: %w", method, &RPCError{Code: int(e.Code), Message: e.Message})
}

func truncate(b []byte) string {
	const limit = 200
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}

// badResult marks a result that arrived but cannot be used; to a caller that is an unusable node.
func badResult(method string, err error) error {
	return fmt.Errorf("%w: %s: unexpected result: %w", ErrUnreachable, method, err)
}

type blockchainInfo struct {
	Chain       string `json:"chain"`
	Pruned      bool   `json:"pruned"`
	PruneHeight *int64 `json:"pruneheight"` // absent on btcd and on unpruned bitcoind
}

func (c *Client) blockchainInfo(ctx context.Context) (*blockchainInfo, error) {
	var info blockchainInfo
	if err := c.call(ctx, &info, "getblockchaininfo"); err != nil {
		return nil, err
	}
	return &info, nil
}

// ChainName returns bitcoind's name for the node's network: main, test, testnet4, regtest,
// signet, or simnet. btcd's "mainnet" and "testnet3" are translated to bitcoind's names.
func (c *Client) ChainName(ctx context.Context) (string, error) {
	info, err := c.blockchainInfo(ctx)
	if err != nil {
		return "", err
	}
	switch info.Chain {
	case "":
		return "", badResult("getblockchaininfo", errors.New("empty chain name"))
	case "mainnet":
		return "main", nil
	case "testnet3":
		return "test", nil
	}
	return info.Chain, nil
}

// PruneHeight reports whether the node prunes and, if so, the lowest height whose block it
// still has. An unpruned node gives (0, false).
func (c *Client) PruneHeight(ctx context.Context) (height uint32, pruned bool, err error) {
	info, err := c.blockchainInfo(ctx)
	if err != nil {
		return 0, false, err
	}
	if !info.Pruned || info.PruneHeight == nil {
		return 0, info.Pruned, nil
	}
	if *info.PruneHeight < 0 || *info.PruneHeight > math.MaxUint32 {
		return 0, false, badResult("getblockchaininfo", fmt.Errorf("pruneheight %d out of range", *info.PruneHeight))
	}
	return uint32(*info.PruneHeight), true, nil
}

func (c *Client) hashCall(ctx context.Context, method string, params ...any) (chainhash.Hash, error) {
	var s string
	if err := c.call(ctx, &s, method, params...); err != nil {
		return chainhash.Hash{}, err
	}
	h, err := parseHash(s)
	if err != nil {
		return chainhash.Hash{}, badResult(method, err)
	}
	return h, nil
}

// parseHash is stricter than chainhash.NewHashFromStr, which accepts short strings.
func parseHash(s string) (chainhash.Hash, error) {
	if len(s) != 2*chainhash.HashSize {
		return chainhash.Hash{}, fmt.Errorf("hash %q is not %d hex digits", truncate([]byte(s)), 2*chainhash.HashSize)
	}
	h, err := chainhash.NewHashFromStr(s)
	if err != nil {
		return chainhash.Hash{}, fmt.Errorf("hash %q: %w", s, err)
	}
	return *h, nil
}

// BestBlockHash returns the hash of the node's chain tip.
func (c *Client) BestBlockHash(ctx context.Context) (chainhash.Hash, error) {
	return c.hashCall(ctx, "getbestblockhash")
}

// BlockHash returns the hash of the main-chain block at height. A height above the tip is an
// RPCError: CodeInvalidParameter from bitcoind, CodeMisc from btcd.
func (c *Client) BlockHash(ctx context.Context, height uint32) (chainhash.Hash, error) {
	return c.hashCall(ctx, "getblockhash", height)
}

func (c *Client) hexCall(ctx context.Context, method string, params ...any) ([]byte, error) {
	var s string
	if err := c.call(ctx, &s, method, params...); err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, badResult(method, err)
	}
	return b, nil
}

// BlockHeader returns the header of any block the node knows, including ones reorganised
// out of the main chain.
func (c *Client) BlockHeader(ctx context.Context, hash chainhash.Hash) (*wire.BlockHeader, error) {
	raw, err := c.hexCall(ctx, "getblockheader", hash.String(), false)
	if err != nil {
		return nil, err
	}
	if len(raw) != wire.MaxBlockHeaderPayload {
		return nil, badResult("getblockheader", fmt.Errorf("header is %d bytes, want %d", len(raw), wire.MaxBlockHeaderPayload))
	}
	var hdr wire.BlockHeader
	if err := hdr.Deserialize(bytes.NewReader(raw)); err != nil {
		return nil, badResult("getblockheader", err)
	}
	if got := hdr.BlockHash(); got != hash {
		return nil, badResult("getblockheader", fmt.Errorf("asked for block %s, got %s", hash, got))
	}
	return &hdr, nil
}

// Block returns any block the node has, including ones reorganised out of the main chain.
func (c *Client) Block(ctx context.Context, hash chainhash.Hash) (*wire.MsgBlock, error) {
	raw, err := c.hexCall(ctx, "getblock", hash.String(), 0)
	if err != nil {
		return nil, err
	}
	var block wire.MsgBlock
	r := bytes.NewReader(raw)
	if err := block.Deserialize(r); err != nil {
		return nil, badResult("getblock", err)
	}
	if r.Len() != 0 {
		return nil, badResult("getblock", fmt.Errorf("%d bytes after the block", r.Len()))
	}
	if got := block.BlockHash(); got != hash {
		return nil, badResult("getblock", fmt.Errorf("asked for block %s, got %s", hash, got))
	}
	return &block, nil
}

// BlockHeight returns the height of a block. It is portable only for main-chain blocks: btcd
// answers CodeInternalError for a block reorganised out, where bitcoind still gives the height.
// Walk stale branches with BlockHeader instead.
func (c *Client) BlockHeight(ctx context.Context, hash chainhash.Hash) (uint32, error) {
	var hdr struct {
		Height *int64 `json:"height"`
	}
	if err := c.call(ctx, &hdr, "getblockheader", hash.String(), true); err != nil {
		return 0, err
	}
	if hdr.Height == nil || *hdr.Height < 0 || *hdr.Height > math.MaxUint32 {
		return 0, badResult("getblockheader", errors.New("missing or invalid height"))
	}
	return uint32(*hdr.Height), nil
}

// SendRawTransaction broadcasts tx, whatever fee rate it pays, and returns its txid. Rejections
// are RPCErrors: see the Code constants; btcd and bitcoind word their messages differently, so
// switch on the code.
func (c *Client) SendRawTransaction(ctx context.Context, tx *wire.MsgTx) (chainhash.Hash, error) {
	if tx == nil {
		return chainhash.Hash{}, errors.New("sendrawtransaction: nil transaction")
	}
	var buf bytes.Buffer
	buf.Grow(tx.SerializeSize())
	if err := tx.Serialize(&buf); err != nil {
		return chainhash.Hash{}, fmt.Errorf("sendrawtransaction: encoding tx: %w", err)
	}
	return c.sendRaw(ctx, hex.EncodeToString(buf.Bytes()))
}

// RawTransactionInfo says where the node knows txid from: its mempool (inMempool), or the
// block it was confirmed in (blockHash). An unknown txid is an RPCError with
// CodeInvalidAddressOrKey; bitcoind without -txindex also answers that for confirmed txs.
func (c *Client) RawTransactionInfo(ctx context.Context, txid chainhash.Hash) (inMempool bool, blockHash *chainhash.Hash, err error) {
	var info struct {
		BlockHash string `json:"blockhash"`
	}
	// Verbosity as an int: btcd rejects a bool here.
	if err := c.call(ctx, &info, "getrawtransaction", txid.String(), 1); err != nil {
		return false, nil, err
	}
	if info.BlockHash == "" {
		return true, nil, nil
	}
	h, err := parseHash(info.BlockHash)
	if err != nil {
		return false, nil, badResult("getrawtransaction", err)
	}
	return false, &h, nil
}
