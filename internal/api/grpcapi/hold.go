package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
)

// Hold says how the public services wait out the tower's transient faults instead of
// answering them: a client in the field (the CLN plugin) treats most error answers as a
// rejection for good.
type Hold struct {
	Gate *hold.Gate
	// Bitcoind is down while bitcoind is unreachable; every public method waits on it.
	Bitcoind *hold.Condition
	// Store is down while the store refuses writes; methods that write wait on it too.
	Store *hold.Condition
}

// SetHold makes the public services hold requests through h; call it before serving.
// Without it a fault is answered at once (Unavailable while bitcoind is unreachable, as
// rust-teos; Internal for a failed write).
func (p *Public) SetHold(h Hold) { p.hold = h }

// run runs fn, the core's part of a request, once the tower can serve it. write says fn
// writes to the store. A fault that outlasts the hold is Unavailable (503 / 32).
func (p *Public) run(ctx context.Context, write bool, fn func() error) error {
	return p.runHeld(ctx, write, true, fn)
}

// runNow is run for a request that asks not to be held (NoHoldHeader): if the tower cannot
// serve it at once it is Unavailable at once, with nothing written.
func (p *Public) runNow(ctx context.Context, write bool, fn func() error) error {
	return p.runHeld(ctx, write, false, fn)
}

func (p *Public) runHeld(ctx context.Context, write, wait bool, fn func() error) error {
	if p.hold.Gate == nil {
		if !p.reachable() {
			return status.Error(codes.Unavailable, msgUnavailable)
		}
		return fn()
	}
	// A write waits for the store to accept writes; a read does not (a full disk still serves
	// reads), but a read the store fails (a database connection lost) is held like a write.
	needs := []*hold.Condition{p.hold.Bitcoind}
	if write {
		needs = append(needs, p.hold.Store)
	}
	classify := func(err error) *hold.Condition {
		// The core takes no context: a context error from it is the store's own timeout (a
		// database that stopped answering), a fault; but a request whose client left is over.
		if ctx.Err() == nil && storeFault(err) {
			return p.hold.Store
		}
		return nil
	}
	var err error
	if wait {
		err = p.hold.Gate.Do(ctx, needs, classify, fn)
	} else {
		err = p.hold.Gate.Try(needs, classify, fn)
	}
	switch {
	case errors.Is(err, hold.ErrUnavailable):
		if c := p.hold.Store.Cause(); write && c != nil {
			p.log.Warn("request answered unavailable: the store still refuses writes", "err", c)
		}
		return status.Error(codes.Unavailable, msgUnavailable)
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return status.FromContextError(err).Err()
	}
	return err
}

// storeFault reports whether err from a core call is a fault of the store's own
// (a full disk, a file it cannot write) rather than an answer to the request. The core
// returns domain errors for answers; anything else failed the write, and the store wrote
// nothing of it (one transaction), so the request can wait and run again. Records the store
// cannot decode are not waited on: they will not heal by themselves.
func storeFault(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := status.FromError(err); ok {
		return false // already an answer
	}
	if _, ok := errors.AsType[*nothingWritten](err); ok {
		return false // a batch's answers
	}
	var expired *gatekeeper.SubscriptionExpiredError
	var refused *gatekeeper.RegistrationRefusedError
	switch {
	case errors.As(err, &refused), errors.Is(err, gatekeeper.ErrAuthenticationFailed), errors.Is(err, gatekeeper.ErrNotEnoughSlots),
		errors.Is(err, gatekeeper.ErrMaxSlots), errors.As(err, &expired),
		errors.Is(err, watcher.ErrAlreadyTriggered), errors.Is(err, watcher.ErrInvalidUserID),
		errors.Is(err, watcher.ErrNotFound), errors.Is(err, watcher.ErrDeleteUnsupported),
		errors.Is(err, store.ErrCorrupt), errors.Is(err, store.ErrUninitialized), errors.Is(err, store.ErrNewerVersion):
		return false
	}
	return true
}
