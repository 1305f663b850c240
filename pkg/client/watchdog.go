package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// minTransferRate is the slowest average rate a watched transfer may keep once past its first
// timeout: what teosd allows a request body (docs/EXTENSIONS.md).
const minTransferRate = 8 << 10 // bytes per second

// errIdle ends a watched request that stalled or trickled.
var errIdle = errors.New("nothing sent or received within the HTTP client's timeout, or under 8 KiB/s on average")

// watchdog cancels a request's context (with errIdle) after its timeout without progress. The
// bytes that count (moved) also bound the whole: the deadline never passes the timeout plus
// the time they take at minTransferRate, so a tower can neither stall a transfer nor trickle it
// forever, whatever its size.
type watchdog struct {
	mu    sync.Mutex
	timer *time.Timer
	idle  time.Duration
	start time.Time
	bytes int64
}

func newWatchdog(idle time.Duration, cancel context.CancelCauseFunc) *watchdog {
	return &watchdog{timer: time.AfterFunc(idle, func() { cancel(errIdle) }), idle: idle, start: time.Now()}
}

// moved re-arms the timer after n bytes went through, within the rate bound.
func (w *watchdog) moved(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bytes += int64(n)
	budget := time.Until(w.start.Add(w.idle + time.Duration(w.bytes)*time.Second/minTransferRate))
	w.timer.Reset(max(min(w.idle, budget), 0))
}

// heard re-arms the timer for a full timeout: an answer line, whose count the caller bounds.
func (w *watchdog) heard() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer.Reset(w.idle)
}

func (w *watchdog) stop() { w.timer.Stop() }

// watchedBody reports each read of a request or answer body to the watchdog.
type watchedBody struct {
	io.ReadCloser
	w *watchdog
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.moved(n)
	}
	return n, err
}

// idleCause adds to err that ctx was ended by a watchdog (errIdle), if it was.
func idleCause(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errIdle) && !errors.Is(err, errIdle) {
		return fmt.Errorf("%w (%w)", err, errIdle)
	}
	return err
}
