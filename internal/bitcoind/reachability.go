package bitcoind

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Reachability states; a change between any two is logged once.
const (
	stateUp = iota
	stateUnreachable
	stateUnauthorized
)

// reachability is bitcoind's reachability as the outcomes of the client's calls show it.
type reachability struct {
	client     *Client
	log        *slog.Logger
	on         func(bool, error)
	probeEvery time.Duration

	authFailures atomic.Uint64
	down         atomic.Bool

	mu      sync.Mutex // guards the fields below and orders the on calls
	state   int
	since   time.Time
	probing bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (r *reachability) init(cfg Config, c *Client) {
	r.client, r.on, r.probeEvery = c, cfg.OnReachability, cfg.ProbeEvery
	r.log = cfg.Logger
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("component", "bitcoind")
	r.ctx, r.cancel = context.WithCancel(context.Background())
}

// Reachable reports whether the last call that reached a verdict found bitcoind answering
// (with a result or a JSON-RPC error). A cancelled call does not count.
func (c *Client) Reachable() bool { return !c.reach.down.Load() }

// AuthFailures counts the calls bitcoind refused for their credentials (HTTP 401/403),
// after the credentials were read again.
func (c *Client) AuthFailures() uint64 { return c.reach.authFailures.Load() }

// record updates the state from one call's outcome.
func (r *reachability) record(err error) {
	var rpcErr *RPCError
	switch {
	case err == nil, errors.As(err, &rpcErr):
		r.set(stateUp, nil)
	case IsUnauthorized(err):
		r.authFailures.Add(1)
		r.set(stateUnauthorized, err)
	case IsUnreachable(err):
		r.set(stateUnreachable, err)
	}
	// Anything else (the caller gave up, a request that could not be encoded) says nothing
	// about the node.
}

func (r *reachability) set(state int, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if state == r.state {
		return
	}
	prev := r.state
	r.state = state
	switch state {
	case stateUp:
		r.down.Store(false)
		r.log.Info("bitcoind reachable again", "after", time.Since(r.since).Round(time.Millisecond))
	case stateUnreachable:
		r.log.Warn("bitcoind unreachable", "err", cause)
	case stateUnauthorized:
		if errors.Is(cause, ErrForbidden) {
			r.log.Error("bitcoind REFUSED TEOSD'S CALLS (HTTP 403): the tower is blind until it allows them; "+
				"add teosd's address to bitcoind's rpcallowip (and rpcbind), or the methods teosd calls to its rpcwhitelist",
				"err", cause)
			break
		}
		r.log.Error("bitcoind REFUSED THE RPC CREDENTIALS: the tower is blind until they match; "+
			"check btc_rpc_user/btc_rpc_password, or that btc_rpc_cookie is the file bitcoind writes (it is re-read on every refusal)",
			"err", cause)
	}
	if prev != stateUp && state != stateUp {
		return // still down, for another reason
	}
	if state != stateUp {
		r.down.Store(true)
		r.since = time.Now()
		r.startProbe()
	}
	if r.on != nil {
		r.on(state == stateUp, cause)
	}
}

// maxRefusedProbe bounds the probe's back-off while bitcoind refuses the credentials (or the
// address): each refused call costs bitcoind a log line ("incorrect password attempt", which
// fail2ban rules match) and a 250 ms sleep in one of its RPC threads, and only an operator or
// a bitcoind restart (a new cookie) ends a refusal. rust-teos polls once a minute.
const maxRefusedProbe = 30 * time.Second

// startProbe calls bitcoind every probeEvery until it answers; r.mu is held. While it refuses
// the calls (stateUnauthorized) the wait doubles after each refusal, up to maxRefusedProbe.
func (r *reachability) startProbe() {
	if r.probeEvery <= 0 || r.probing || r.closed {
		return
	}
	r.probing = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		wait := r.probeEvery
		t := time.NewTimer(wait)
		defer t.Stop()
		for {
			select {
			case <-r.ctx.Done():
				return
			case <-t.C:
			}
			_, _ = r.client.BestBlockHash(r.ctx)
			r.mu.Lock()
			if !r.down.Load() || r.closed {
				r.probing = false
				r.mu.Unlock()
				return
			}
			refused := r.state == stateUnauthorized
			r.mu.Unlock()
			if refused {
				wait = max(r.probeEvery, min(2*wait, maxRefusedProbe))
			} else {
				wait = r.probeEvery
			}
			t.Reset(wait)
		}
	}()
}

func (r *reachability) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}
