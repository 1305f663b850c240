// Package addbatch shares the internal gRPC hop between concurrent add_appointment requests:
// a PublicTowerServicesClient whose AddAppointment sends the adds queued at the same moment as
// one PublicTowerExtensions.add_appointments call, one store transaction, instead of one call
// each. The server answers every item exactly as add_appointment would (same status code and
// message), so a caller sees no difference but the cost.
//
// Nothing waits on a timer: an add that finds a call slot free goes at once, alone, as the
// unary add_appointment; adds arriving while every slot is busy queue and leave together when
// a slot frees. Batches therefore grow only under load, and a few calls in flight keep the
// CPUs busy (one batch commits while the next recovers its signatures).
//
// An add is answered only once its call has returned (committed), so a client's next request
// always goes in a later call: batches in flight side by side hold only concurrent requests.
// A caller that leaves is dropped from the queue; once sent, its add stays in its call, which
// is cancelled only when every caller in it has left.
package addbatch

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// msgInternal is grpcapi's answer to an error the tower did not expect.
const msgInternal = "internal error"

// DefaultMaxBytes keeps a batch well inside gRPC's default 4 MiB message limit, whatever the
// size of the adds the HTTP API lets through.
const DefaultMaxBytes = 3 << 20

// DefaultInFlight is how many add calls are in flight at once by default: two keep both
// cores of a small machine busy, one batch recovering signatures while the other commits.
const DefaultInFlight = 2

// Config tunes a Client.
type Config struct {
	// MaxItems bounds one add_appointments call (the server's bound, grpcapi.MaxBatchItems).
	MaxItems int
	// MaxBytes bounds the encoded requests of one add_appointments call, to stay inside the
	// server's message limit (0: DefaultMaxBytes). An add bigger than it goes alone.
	MaxBytes int
	// InFlight is how many add calls may be in flight at once (0: DefaultInFlight).
	InFlight int
	// Bypass, if set, is asked before each add; while it is true adds go one by one as
	// add_appointment, as without coalescing. The tower sets it while its hold is active, so
	// held requests are held one by one: each with its own bound, its own place among the
	// held, and dropped when its own client leaves.
	Bypass func() bool
	// NoHoldHeader, if set, is sent as metadata of every batch call, asking the tower not to
	// hold it (grpcapi.NoHoldHeader): a batch the tower cannot serve at once fails, and its
	// adds are sent again one by one, to be held each on its own.
	NoHoldHeader string
	// Logger receives a batch answer that does not fit its request (a bug). Nil discards.
	Logger *slog.Logger
}

// Client is a PublicTowerServicesClient that coalesces AddAppointment calls; every other
// method goes to the wrapped client unchanged. It is safe for concurrent use.
type Client struct {
	teosv2.PublicTowerServicesClient // the unary calls, and everything but AddAppointment
	ext                              teosv2.PublicTowerExtensionsClient
	cfg                              Config
	log                              *slog.Logger
	sizes                            sizeCounts

	mu       sync.Mutex
	inflight int       // add calls in flight (may pass cfg.InFlight after Flush)
	queue    []*waiter // adds waiting for a slot; non-empty only while every slot is busy
}

var _ teosv2.PublicTowerServicesClient = (*Client)(nil)

// New wraps public, sending batches through ext (both usually on the same connection).
func New(public teosv2.PublicTowerServicesClient, ext teosv2.PublicTowerExtensionsClient, cfg Config) *Client {
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = 1
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultInFlight
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{PublicTowerServicesClient: public, ext: ext, cfg: cfg, log: log.With("component", "addbatch")}
}

// waiter is one queued AddAppointment. Fields after req are guarded by Client.mu.
type waiter struct {
	req  *commonv2.AddAppointmentRequest
	size int // req's encoded size in a batch

	done     chan struct{} // closed once answered
	batch    *batch        // set when sent
	answered bool
	resp     *commonv2.AddAppointmentResponse
	err      error
	alone    bool // the batch refused it as an internal error or DataLoss: the caller sends it alone
}

// batch is one call on behalf of its waiters. Its context is cancelled once every waiter has
// left, so a call the server holds (a fault) does not outlive the clients it is for.
type batch struct {
	waiters []*waiter
	live    int // waiters still waiting, guarded by Client.mu
	ctx     context.Context
	cancel  context.CancelFunc
}

// AddAppointment sends req alone at once if a call slot is free; otherwise it queues req for
// the next batch. The answer, including on a cancelled ctx, is the one add_appointment gives.
func (c *Client) AddAppointment(ctx context.Context, req *commonv2.AddAppointmentRequest, opts ...grpc.CallOption) (*commonv2.AddAppointmentResponse, error) {
	if len(opts) > 0 || (c.cfg.Bypass != nil && c.cfg.Bypass()) {
		c.sizes.observe(1)
		return c.PublicTowerServicesClient.AddAppointment(ctx, req, opts...)
	}
	if err := ctx.Err(); err != nil { // as grpc-go: nothing is sent
		return nil, status.FromContextError(err).Err()
	}
	c.mu.Lock()
	if c.inflight < c.cfg.InFlight && len(c.queue) == 0 {
		c.inflight++
		c.mu.Unlock()
		c.sizes.observe(1)
		defer c.release() // also if the call panics: a lost slot would queue every later add
		return c.PublicTowerServicesClient.AddAppointment(ctx, req)
	}
	w := &waiter{req: req, size: batchItemSize(req), done: make(chan struct{})}
	c.queue = append(c.queue, w)
	c.mu.Unlock()
	if c.cfg.Bypass != nil && c.cfg.Bypass() {
		// The hold started since the check above, and its Flush may have run before w was
		// queued: the calls in flight may be held, so w must not wait behind them.
		c.Flush()
	}

	select {
	case <-w.done:
	case <-ctx.Done():
		if c.leave(w) {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		<-w.done // answered as it left
	}
	if w.alone {
		c.sizes.observe(1)
		return c.PublicTowerServicesClient.AddAppointment(ctx, req)
	}
	return w.resp, w.err
}

// Flush sends every queued add now, past the InFlight bound. The tower calls it when its
// hold starts (a condition goes down): the calls in flight may then be held up to the hold's
// bound, and the queue must not wait behind them for that long first. It never blocks.
func (c *Client) Flush() {
	c.mu.Lock()
	var started []*batch
	for len(c.queue) > 0 {
		c.inflight++
		started = append(started, c.take())
	}
	c.mu.Unlock()
	for _, b := range started {
		go c.run(b)
	}
}

// leave drops w, whose caller gave up, and reports whether it was still unanswered. A queued
// add is never sent; a sent one stays in its batch, whose call is cancelled once it has
// no waiter left.
func (c *Client) leave(w *waiter) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.answered {
		return false
	}
	w.answered = true
	if w.batch == nil {
		for i, q := range c.queue {
			if q == w {
				c.queue = append(c.queue[:i], c.queue[i+1:]...)
				break
			}
		}
		return true
	}
	if w.batch.live--; w.batch.live == 0 {
		w.batch.cancel()
	}
	return true
}

// release frees the slot of a call that has returned, or hands it to the queue.
func (c *Client) release() {
	c.mu.Lock()
	b := c.take()
	c.mu.Unlock()
	if b != nil {
		go c.run(b)
	}
}

// take makes the next batch out of the queue for a slot already counted in c.inflight, or
// frees the slot if the queue is empty. c.mu is held.
func (c *Client) take() *batch {
	if len(c.queue) == 0 {
		c.inflight--
		return nil
	}
	n, size := 1, c.queue[0].size // the first goes even if bigger than MaxBytes: alone
	for n < min(len(c.queue), c.cfg.MaxItems) && size+c.queue[n].size <= c.cfg.MaxBytes {
		size += c.queue[n].size
		n++
	}
	b := &batch{waiters: c.queue[:n:n], live: n}
	if n == len(c.queue) {
		c.queue = nil // a fresh queue: the batch keeps the old array
	} else {
		c.queue = c.queue[n:]
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if c.cfg.NoHoldHeader != "" && n > 1 {
		b.ctx = metadata.AppendToOutgoingContext(b.ctx, c.cfg.NoHoldHeader, "1")
	}
	for _, w := range b.waiters {
		w.batch = b
	}
	return b
}

// run sends b, then the batches the queue fills while it does, until the queue is empty.
func (c *Client) run(b *batch) {
	for b != nil {
		c.send(b)
		c.mu.Lock()
		b = c.take()
		c.mu.Unlock()
	}
}

// send makes b's call and answers its waiters. A batch of one is sent as add_appointment.
func (c *Client) send(b *batch) {
	defer b.cancel()
	c.sizes.observe(len(b.waiters))
	if len(b.waiters) == 1 {
		resp, err := c.PublicTowerServicesClient.AddAppointment(b.ctx, b.waiters[0].req)
		c.answer(b, func(int, *waiter) { b.waiters[0].resp, b.waiters[0].err = resp, err })
		return
	}
	reqs := make([]*commonv2.AddAppointmentRequest, len(b.waiters))
	for i, w := range b.waiters {
		reqs[i] = w.req
	}
	resp, err := c.ext.AddAppointments(b.ctx, &teosv2.AddAppointmentsRequest{Appointments: reqs})
	switch {
	case err != nil && c.cfg.NoHoldHeader != "":
		// The whole call failed: not served at once (nothing written), or the transport (an
		// add sent again is idempotent). Each add goes again alone, as add_appointment, to get
		// its own answer, held on its own.
		c.answer(b, func(_ int, w *waiter) { w.alone = true })
	case err != nil: // the whole call failed (held past the bound, bitcoind down, transport): every item did
		c.answer(b, func(_ int, w *waiter) { w.err = err })
	case len(resp.GetResults()) != len(reqs):
		c.log.Error("add_appointments answered the wrong number of results", "sent", len(reqs), "results", len(resp.GetResults()))
		c.answer(b, func(_ int, w *waiter) { w.err = status.Error(codes.Internal, msgInternal) })
	default:
		results := resp.GetResults()
		c.answer(b, func(i int, w *waiter) { w.resp, w.err, w.alone = c.result(w.req, results[i]) })
	}
}

// batchItemSize is what req adds to an add_appointments request: its encoding, and the
// field's tag and length prefix.
func batchItemSize(req *commonv2.AddAppointmentRequest) int {
	n := proto.Size(req)
	return n + protowire.SizeTag(1) + protowire.SizeVarint(uint64(n))
}

// result is one item's answer as add_appointment gives it. An item refused as an internal
// error, or as DataLoss (a damaged page or an unreadable record of the tower's database), was
// not written, and may have failed for another item (one store transaction), so it is sent
// again alone to get its own answer (alone).
func (c *Client) result(req *commonv2.AddAppointmentRequest, r *teosv2.AddAppointmentResult) (resp *commonv2.AddAppointmentResponse, err error, alone bool) {
	switch x := r.GetResult().(type) {
	case *teosv2.AddAppointmentResult_Receipt:
		// A receipt must be for this item's locator: never hand a client another's.
		if x.Receipt != nil && bytes.Equal(x.Receipt.GetLocator(), req.GetAppointment().GetLocator()) {
			return x.Receipt, nil, false
		}
	case *teosv2.AddAppointmentResult_Error:
		code := codes.Code(x.Error.GetCode())
		if code == codes.Internal || code == codes.DataLoss {
			return nil, nil, true
		}
		if code != codes.OK {
			return nil, status.Error(code, x.Error.GetMessage()), false
		}
	}
	c.log.Error("add_appointments answered an item with neither its receipt nor an error")
	return nil, status.Error(codes.Internal, msgInternal), false
}

// answer sets each waiter's answer with set and wakes it, skipping those that left.
func (c *Client) answer(b *batch, set func(i int, w *waiter)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, w := range b.waiters {
		if w.answered {
			continue
		}
		w.answered = true
		set(i, w)
		close(w.done)
	}
}

// Queued is how many adds wait for a call slot now.
func (c *Client) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// SizeBuckets are the upper bounds of the batch size histogram (Sizes).
var SizeBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// Sizes counts the add calls made so far by their number of appointments: Calls and Adds in
// all, and Buckets[i] the calls of at most SizeBuckets[i] (cumulative, as Prometheus wants).
type Sizes struct {
	Calls, Adds uint64
	Buckets     [len(SizeBuckets)]uint64
}

// Sizes is a snapshot of the batch sizes so far (adds sent alone count as calls of one).
func (c *Client) Sizes() Sizes { return c.sizes.snapshot() }

type sizeCounts struct {
	calls, adds atomic.Uint64
	buckets     [len(SizeBuckets)]atomic.Uint64 // not cumulative
}

func (s *sizeCounts) observe(n int) {
	s.calls.Add(1)
	s.adds.Add(uint64(n))
	for i, le := range SizeBuckets {
		if n <= le {
			s.buckets[i].Add(1)
			return
		}
	}
}

func (s *sizeCounts) snapshot() Sizes {
	var out Sizes
	var sum uint64
	for i := range s.buckets {
		sum += s.buckets[i].Load()
		out.Buckets[i] = sum
	}
	out.Adds = s.adds.Load()
	out.Calls = sum // consistent with the buckets, which a scrape may read mid-update
	return out
}
