package addbatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// call is one call the fake tower received.
type call struct {
	batch bool
	sigs  []string // the items' signatures, in order
	ctx   context.Context
}

// fakeTower answers each item by its signature (answerFor), as add_appointment and
// add_appointments would; every call first waits for a token on gate (nil: no wait) or for
// its context to end.
type fakeTower struct {
	teosv2.PublicTowerServicesClient
	teosv2.PublicTowerExtensionsClient

	gate    chan struct{}
	calls   chan call // every call, as it starts
	wholeFn func() error
	count   func(n int) int // how many results a batch answers (nil: n)
	// oneTx: an item answered DataLoss fails every item of its batch with it, as the one store
	// transaction of a batch that reached a damaged page does.
	oneTx bool

	mu    sync.Mutex
	gotAp int // GetAppointment calls
}

func newFake(gated bool) *fakeTower {
	f := &fakeTower{calls: make(chan call, 1024)}
	if gated {
		f.gate = make(chan struct{})
	}
	return f
}

// msgDamaged is grpcapi.MsgDamaged.
const msgDamaged = "Service currently unavailable: the tower's database needs repair, send again later"

// answerFor is the tower's answer to one add, by its signature's prefix.
func answerFor(sig string) (*commonv2.AddAppointmentResponse, error) {
	switch {
	case len(sig) >= 6 && sig[:6] == "unauth":
		return nil, status.Error(codes.Unauthenticated, "Invalid signature or user does not have enough slots available")
	case len(sig) >= 7 && sig[:7] == "expired":
		return nil, status.Error(codes.Unauthenticated, "Your subscription expired at 1016")
	case len(sig) >= 9 && sig[:9] == "triggered":
		return nil, status.Error(codes.AlreadyExists, "The provided appointment has already been triggered")
	case len(sig) >= 8 && sig[:8] == "internal":
		return nil, status.Error(codes.Internal, msgInternal)
	case len(sig) >= 7 && sig[:7] == "damaged":
		return nil, status.Error(codes.DataLoss, msgDamaged)
	}
	return &commonv2.AddAppointmentResponse{Locator: []byte(sig), StartBlock: 7, Signature: "receipt " + sig, AvailableSlots: 3, SubscriptionExpiry: 9}, nil
}

func (f *fakeTower) wait(ctx context.Context) error {
	if f.gate == nil {
		return nil
	}
	select {
	case <-f.gate:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (f *fakeTower) AddAppointment(ctx context.Context, req *commonv2.AddAppointmentRequest, _ ...grpc.CallOption) (*commonv2.AddAppointmentResponse, error) {
	f.calls <- call{sigs: []string{req.GetSignature()}, ctx: ctx}
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return answerFor(req.GetSignature())
}

func (f *fakeTower) AddAppointments(ctx context.Context, req *teosv2.AddAppointmentsRequest, _ ...grpc.CallOption) (*teosv2.AddAppointmentsResponse, error) {
	c := call{batch: true, ctx: ctx}
	for _, r := range req.GetAppointments() {
		c.sigs = append(c.sigs, r.GetSignature())
	}
	f.calls <- c
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if f.wholeFn != nil {
		if err := f.wholeFn(); err != nil {
			return nil, err
		}
	}
	n := len(c.sigs)
	if f.count != nil {
		n = f.count(n)
	}
	out := &teosv2.AddAppointmentsResponse{}
	var txErr error // the batch's DataLoss, with oneTx
	for _, sig := range c.sigs {
		if _, err := answerFor(sig); f.oneTx && status.Code(err) == codes.DataLoss {
			txErr = err
		}
	}
	for i := range n {
		resp, err := answerFor(c.sigs[i%len(c.sigs)])
		if txErr != nil {
			resp, err = nil, txErr
		}
		if err != nil {
			st, _ := status.FromError(err)
			out.Results = append(out.Results, &teosv2.AddAppointmentResult{Result: &teosv2.AddAppointmentResult_Error{
				Error: &teosv2.AppointmentError{Code: uint32(st.Code()), Message: st.Message()}}})
			continue
		}
		out.Results = append(out.Results, &teosv2.AddAppointmentResult{Result: &teosv2.AddAppointmentResult_Receipt{Receipt: resp}})
	}
	return out, nil
}

func (f *fakeTower) GetAppointment(context.Context, *commonv2.GetAppointmentRequest, ...grpc.CallOption) (*commonv2.GetAppointmentResponse, error) {
	f.mu.Lock()
	f.gotAp++
	f.mu.Unlock()
	return &commonv2.GetAppointmentResponse{Status: commonv2.GetAppointmentResponse_BEING_WATCHED}, nil
}

// sorted is a sorted copy: concurrent callers queue in any order.
func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func addReq(sig string) *commonv2.AddAppointmentRequest {
	return &commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{Locator: []byte(sig)}, Signature: sig}
}

type outcome struct {
	sig  string
	resp *commonv2.AddAppointmentResponse
	err  error
}

// add calls c.AddAppointment in a goroutine; its outcome arrives on out.
func add(ctx context.Context, c *Client, sig string, out chan<- outcome) {
	go func() {
		resp, err := c.AddAppointment(ctx, addReq(sig))
		out <- outcome{sig, resp, err}
	}()
}

// waitQueued waits until n adds are queued (a bound that only stops a broken test hanging).
func waitQueued(t *testing.T, c *Client, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c.mu.Lock()
		q := len(c.queue)
		c.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d adds queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// sameAnswer checks got is what add_appointment answers for sig.
func sameAnswer(t *testing.T, o outcome) {
	t.Helper()
	want, werr := answerFor(o.sig)
	if status.Code(o.err) != status.Code(werr) || fmt.Sprint(o.err) != fmt.Sprint(werr) {
		t.Errorf("%s: error %v, want %v", o.sig, o.err, werr)
	}
	if want.GetSignature() != o.resp.GetSignature() || string(want.GetLocator()) != string(o.resp.GetLocator()) {
		t.Errorf("%s: receipt %v, want %v", o.sig, o.resp, want)
	}
}

func TestLoneAddGoesAloneAsAddAppointment(t *testing.T) {
	f := newFake(false)
	c := New(f, f, Config{MaxItems: 1000})
	for _, sig := range []string{"ok", "unauth", "internal"} {
		resp, err := c.AddAppointment(t.Context(), addReq(sig))
		sameAnswer(t, outcome{sig, resp, err})
		if got := <-f.calls; got.batch || len(got.sigs) != 1 || got.sigs[0] != sig {
			t.Errorf("lone add %s sent as %+v, want add_appointment", sig, got)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("%d extra calls", len(f.calls))
	}
	if s := c.Sizes(); s.Calls != 3 || s.Adds != 3 || s.Buckets[0] != 3 {
		t.Errorf("sizes %+v", s)
	}
}

// Adds arriving while every slot is busy leave together in one add_appointments call, and
// each gets its own item's answer, with the status add_appointment would give.
func TestConcurrentAddsShareOneCall(t *testing.T) {
	f := newFake(true)
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1})
	out := make(chan outcome, 16)
	add(t.Context(), c, "first", out)
	<-f.calls // the first holds the only slot
	sigs := []string{"ok 1", "unauth 2", "expired 3", "triggered 4", "ok 5"}
	for _, s := range sigs {
		add(t.Context(), c, s, out)
	}
	waitQueued(t, c, len(sigs))
	f.gate <- struct{}{} // the first call returns
	sameAnswer(t, <-out)
	got := <-f.calls
	if !got.batch || fmt.Sprint(sorted(got.sigs)) != fmt.Sprint(sorted(sigs)) {
		t.Fatalf("queued adds sent as %+v, want one add_appointments of %v", got, sigs)
	}
	f.gate <- struct{}{}
	for range sigs {
		sameAnswer(t, <-out)
	}
	if s := c.Sizes(); s.Calls != 2 || s.Adds != 6 {
		t.Errorf("sizes %+v, want 2 calls of 6 adds", s)
	}
}

// A batch is at most MaxItems; the rest goes in the next one.
func TestBatchesAreBounded(t *testing.T) {
	f := newFake(true)
	c := New(f, f, Config{MaxItems: 3, InFlight: 1})
	out := make(chan outcome, 16)
	add(t.Context(), c, "first", out)
	<-f.calls
	for i := range 5 {
		add(t.Context(), c, fmt.Sprint("ok ", i), out)
	}
	waitQueued(t, c, 5)
	close(f.gate)
	if got := <-f.calls; len(got.sigs) != 3 {
		t.Errorf("first batch %v, want 3 items", got.sigs)
	}
	if got := <-f.calls; len(got.sigs) != 2 {
		t.Errorf("second batch %v, want 2 items", got.sigs)
	}
	for range 6 {
		sameAnswer(t, <-out)
	}
}

// An item the batch refused as an internal error (maybe another item's fault: one store
// transaction) is sent again alone, with its caller's context, and gets that answer.
func TestInternalItemSentAgainAlone(t *testing.T) {
	f := newFake(true)
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1})
	out := make(chan outcome, 4)
	add(t.Context(), c, "first", out)
	<-f.calls
	add(t.Context(), c, "ok a", out)
	add(t.Context(), c, "internal b", out)
	waitQueued(t, c, 2)
	close(f.gate)
	<-out
	if got := <-f.calls; !got.batch {
		t.Fatalf("not batched: %+v", got)
	}
	for range 2 {
		sameAnswer(t, <-out)
	}
	if got := <-f.calls; got.batch || fmt.Sprint(got.sigs) != "[internal b]" {
		t.Errorf("internal item resent as %+v, want add_appointment alone", got)
	}
}

// A batch that reached a damaged page of the tower's database, or an unreadable record, fails
// as a whole (one store transaction): every item is answered DataLoss, also those of other
// users whose records are fine. Each is sent again alone and gets its own answer: a receipt,
// or DataLoss for the one that reaches the damage.
func TestDataLossItemsSentAgainAlone(t *testing.T) {
	f := newFake(true)
	f.oneTx = true
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1})
	out := make(chan outcome, 4)
	add(t.Context(), c, "first", out)
	<-f.calls
	add(t.Context(), c, "ok a", out)
	add(t.Context(), c, "damaged b", out)
	waitQueued(t, c, 2)
	close(f.gate)
	<-out
	if got := <-f.calls; !got.batch || len(got.sigs) != 2 {
		t.Fatalf("not batched: %+v", got)
	}
	for range 2 {
		sameAnswer(t, <-out) // "ok a" its receipt, "damaged b" DataLoss
	}
	var resent []string
	for range 2 {
		select {
		case got := <-f.calls:
			if got.batch {
				t.Fatalf("resent as a batch: %+v", got)
			}
			resent = append(resent, got.sigs...)
		case <-time.After(30 * time.Second): // at once, unless the items are not resent at all
			t.Fatalf("resent alone: %v, want both items", resent)
		}
	}
	if got := sorted(resent); !slices.Equal(got, []string{"damaged b", "ok a"}) {
		t.Errorf("resent alone: %v, want both items", got)
	}
}

// A whole-call failure (held past the bound, transport) is every waiter's answer.
func TestWholeCallErrorGoesToEveryWaiter(t *testing.T) {
	f := newFake(true)
	unavailable := status.Error(codes.Unavailable, "Service currently unavailable")
	f.wholeFn = func() error { return unavailable }
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1})
	out := make(chan outcome, 4)
	add(t.Context(), c, "first", out)
	<-f.calls
	add(t.Context(), c, "ok a", out)
	add(t.Context(), c, "ok b", out)
	waitQueued(t, c, 2)
	f.gate <- struct{}{}
	<-out
	close(f.gate)
	for range 2 {
		if o := <-out; !errors.Is(o.err, unavailable) || o.resp != nil {
			t.Errorf("%s: %v %v, want %v", o.sig, o.resp, o.err, unavailable)
		}
	}
}

// With NoHoldHeader, a batch call carries the header, and when the whole call fails each of
// its adds is sent again alone (without the header), each getting its own answer.
func TestNoHoldBatchFailureSendsEachAlone(t *testing.T) {
	f := newFake(true)
	unavailable := status.Error(codes.Unavailable, "Service currently unavailable")
	f.wholeFn = func() error { return unavailable }
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1, NoHoldHeader: "teos-no-hold"})
	out := make(chan outcome, 4)
	add(t.Context(), c, "first", out)
	if first := <-f.calls; hasNoHold(first.ctx) {
		t.Error("a lone add carries the no-hold header")
	}
	add(t.Context(), c, "ok a", out)
	add(t.Context(), c, "unauth b", out)
	waitQueued(t, c, 2)
	f.gate <- struct{}{}
	<-out
	close(f.gate)
	batch := <-f.calls
	if !batch.batch || !hasNoHold(batch.ctx) {
		t.Fatalf("second call: batch %v, no-hold header %v; want a batch with the header", batch.batch, hasNoHold(batch.ctx))
	}
	var alone []string
	for range 2 {
		a := <-f.calls
		if a.batch || hasNoHold(a.ctx) {
			t.Errorf("re-sent add %v: batch %v, no-hold header %v; want alone, without it", a.sigs, a.batch, hasNoHold(a.ctx))
		}
		alone = append(alone, a.sigs...)
	}
	if got := sorted(alone); !slices.Equal(got, []string{"ok a", "unauth b"}) {
		t.Errorf("re-sent alone: %v", got)
	}
	for range 2 {
		o := <-out
		want, wantErr := answerFor(o.sig)
		if status.Code(o.err) != status.Code(wantErr) || (want != nil && o.resp.GetSignature() != want.GetSignature()) {
			t.Errorf("%s: %v %v, want its own answer %v %v", o.sig, o.resp, o.err, want, wantErr)
		}
	}
}

func hasNoHold(ctx context.Context) bool {
	md, _ := metadata.FromOutgoingContext(ctx)
	return len(md.Get("teos-no-hold")) > 0
}

// A batch answered with a wrong number of results cannot be matched: every waiter gets
// add_appointment's internal error, none someone else's receipt.
func TestWrongResultCount(t *testing.T) {
	for _, n := range []func(int) int{func(n int) int { return n - 1 }, func(n int) int { return n + 1 }, func(int) int { return 0 }} {
		f := newFake(true)
		f.count = n
		c := New(f, f, Config{MaxItems: 1000, InFlight: 1})
		out := make(chan outcome, 4)
		add(t.Context(), c, "first", out)
		<-f.calls
		add(t.Context(), c, "ok a", out)
		add(t.Context(), c, "ok b", out)
		waitQueued(t, c, 2)
		f.gate <- struct{}{}
		<-out
		close(f.gate)
		for range 2 {
			o := <-out
			if st, _ := status.FromError(o.err); st.Code() != codes.Internal || st.Message() != msgInternal || o.resp != nil {
				t.Errorf("%d results: %s got %v %v, want internal error", n(2), o.sig, o.resp, o.err)
			}
		}
	}
}

// One caller leaving does not cancel its batch's call: the others are answered. Once every
// caller of a batch has left, its call is cancelled (a held call must not outlive them).
func TestOneWaiterLeavingDoesNotCancelOthers(t *testing.T) {
	f := newFake(true)
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1})
	out := make(chan outcome, 8)
	add(t.Context(), c, "first", out)
	<-f.calls
	leaver, leave := context.WithCancel(t.Context())
	add(leaver, c, "ok leaving", out)
	add(t.Context(), c, "ok staying", out)
	waitQueued(t, c, 2)
	f.gate <- struct{}{}
	<-out
	b := <-f.calls // the batch, in flight
	leave()
	if o := <-out; o.sig != "ok leaving" || status.Code(o.err) != codes.Canceled {
		t.Fatalf("leaving caller got %+v, want Canceled", o)
	}
	if b.ctx.Err() != nil {
		t.Fatal("one caller leaving cancelled the batch")
	}
	f.gate <- struct{}{}
	sameAnswer(t, <-out)

	// Now a batch every caller leaves.
	ctx1, cancel1 := context.WithCancel(t.Context())
	ctx2, cancel2 := context.WithCancel(t.Context())
	ctx3, cancel3 := context.WithCancel(t.Context())
	add(ctx1, c, "ok holder", out)
	<-f.calls
	add(ctx2, c, "ok x", out)
	add(ctx3, c, "ok y", out)
	waitQueued(t, c, 2)
	cancel1() // the first call is cancelled with its only caller: the batch goes
	<-out
	b = <-f.calls
	cancel2()
	<-out
	if b.ctx.Err() != nil {
		t.Fatal("batch cancelled with a caller left")
	}
	cancel3()
	<-out
	<-b.ctx.Done() // cancelled: the test hangs otherwise
}

// A caller that leaves while queued is never sent.
func TestQueuedWaiterLeavingIsNotSent(t *testing.T) {
	f := newFake(true)
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1})
	out := make(chan outcome, 8)
	add(t.Context(), c, "first", out)
	<-f.calls
	leaver, leave := context.WithCancel(t.Context())
	add(leaver, c, "ok leaving", out)
	add(t.Context(), c, "ok a", out)
	add(t.Context(), c, "ok b", out)
	waitQueued(t, c, 3)
	leave()
	if o := <-out; status.Code(o.err) != codes.Canceled {
		t.Fatalf("%+v, want Canceled", o)
	}
	waitQueued(t, c, 2)
	close(f.gate)
	<-out
	if got := <-f.calls; fmt.Sprint(sorted(got.sigs)) != "[ok a ok b]" {
		t.Errorf("sent %v, want the two staying", got.sigs)
	}
	for range 2 {
		sameAnswer(t, <-out)
	}
	// A caller whose context is already done sends nothing, as grpc-go.
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.AddAppointment(done, addReq("ok late")); status.Code(err) != codes.Canceled {
		t.Errorf("done context: %v", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("a call was made for a done context")
	}
}

// While Bypass is true every add goes alone, whatever is in flight; Flush sends the queue
// past the InFlight bound.
func TestBypassAndFlush(t *testing.T) {
	f := newFake(true)
	var bypass bool
	var mu sync.Mutex
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1, Bypass: func() bool { mu.Lock(); defer mu.Unlock(); return bypass }})
	out := make(chan outcome, 8)
	add(t.Context(), c, "first", out)
	<-f.calls
	add(t.Context(), c, "ok q1", out)
	add(t.Context(), c, "ok q2", out)
	waitQueued(t, c, 2)
	mu.Lock()
	bypass = true
	mu.Unlock()
	add(t.Context(), c, "ok bypass", out)
	if got := <-f.calls; got.batch || fmt.Sprint(got.sigs) != "[ok bypass]" {
		t.Fatalf("add under bypass sent as %+v", got)
	}
	c.Flush()
	if got := <-f.calls; fmt.Sprint(sorted(got.sigs)) != "[ok q1 ok q2]" {
		t.Fatalf("flush sent %+v", got)
	}
	close(f.gate)
	for range 4 {
		sameAnswer(t, <-out)
	}
	// A batch's goroutine frees its slot just after it answered its waiters, so the count is
	// awaited, not read once (CI: "1 in flight" read between the two).
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		inflight, queued := c.inflight, len(c.queue)
		c.mu.Unlock()
		if inflight == 0 && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after all answered: %d in flight, %d queued", inflight, queued)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOtherMethodsPassThrough(t *testing.T) {
	f := newFake(false)
	c := New(f, f, Config{MaxItems: 1000})
	if _, err := c.GetAppointment(t.Context(), &commonv2.GetAppointmentRequest{}); err != nil || f.gotAp != 1 {
		t.Errorf("get_appointment: %v, %d calls", err, f.gotAp)
	}
}

// Many concurrent callers: every one gets its own answer, and calls carry more than one add.
func TestManyCallersBatchUnderLoad(t *testing.T) {
	f := newFake(true)
	c := New(f, f, Config{MaxItems: 1000, InFlight: 2})
	const n = 200
	out := make(chan outcome, n)
	for i := range n {
		add(t.Context(), c, fmt.Sprintf("ok %d", i), out)
	}
	go func() { // answer calls one at a time until all are answered
		for range n {
			select {
			case f.gate <- struct{}{}:
			case <-t.Context().Done():
				return
			}
		}
	}()
	for range n {
		sameAnswer(t, <-out)
	}
	s := c.Sizes()
	if s.Adds != n || s.Calls >= n {
		t.Errorf("sizes %+v: %d adds in %d calls, want batching", s, s.Adds, s.Calls)
	}
	t.Logf("%d adds in %d calls", s.Adds, s.Calls)
}

// A receipt for another locator than its item's (a server answering out of order) is never
// handed to the client: it gets add_appointment's internal error.
func TestReceiptForAnotherLocator(t *testing.T) {
	f := newFake(true)
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1})
	out := make(chan outcome, 4)
	add(t.Context(), c, "first", out)
	<-f.calls
	// Both items carry the same signature but different locators: the fake answers each
	// with a receipt for its signature, which is the wrong locator for the second.
	go func() {
		resp, err := c.AddAppointment(t.Context(), addReq("ok a"))
		out <- outcome{"ok a", resp, err}
	}()
	waitQueued(t, c, 1)
	go func() {
		req := addReq("ok a")
		req.Appointment.Locator = []byte("elsewhere")
		resp, err := c.AddAppointment(t.Context(), req)
		out <- outcome{"elsewhere", resp, err}
	}()
	waitQueued(t, c, 2)
	f.gate <- struct{}{}
	<-out
	close(f.gate)
	for range 2 {
		o := <-out
		if o.sig == "elsewhere" {
			if status.Code(o.err) != codes.Internal || o.resp != nil {
				t.Errorf("receipt for another locator: %v %v, want internal error", o.resp, o.err)
			}
			continue
		}
		sameAnswer(t, o)
	}
}

// A batch's encoded requests stay within MaxBytes: the queue leaves in as many calls as that
// takes, in order, and an add bigger than the bound on its own goes alone.
func TestBatchesBoundedByBytes(t *testing.T) {
	item := batchItemSize(addReq("ok 0"))
	f := newFake(true)
	c := New(f, f, Config{MaxItems: 1000, InFlight: 1, MaxBytes: 2 * item})
	out := make(chan outcome, 8)
	add(t.Context(), c, "first", out)
	<-f.calls
	sigs := []string{"ok 0", "ok 1", "ok 2", "ok 3", "ok 4"}
	for i, sig := range sigs {
		add(t.Context(), c, sig, out)
		waitQueued(t, c, i+1) // queued in this order
	}
	big := &commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{Locator: []byte("ok big"), EncryptedBlob: make([]byte, 3*item)}, Signature: "ok big"}
	go func() {
		resp, err := c.AddAppointment(t.Context(), big)
		out <- outcome{"ok big", resp, err}
	}()
	waitQueued(t, c, len(sigs)+1)
	close(f.gate)
	var got [][]string
	for range 4 { // ok 0+1, ok 2+3, ok 4 alone, big alone
		call := <-f.calls
		got = append(got, call.sigs)
		if call.batch && len(call.sigs) > 2 {
			t.Errorf("a batch of %d adds, want at most 2 (%d bytes each, bound %d)", len(call.sigs), item, 2*item)
		}
	}
	want := [][]string{{"ok 0", "ok 1"}, {"ok 2", "ok 3"}, {"ok 4"}, {"ok big"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	for range len(sigs) + 2 {
		if o := <-out; o.err != nil || o.resp.GetSignature() != "receipt "+o.sig {
			t.Errorf("%s: %v %v", o.sig, o.resp, o.err)
		}
	}
	// The bound counts what a batch request encodes to.
	two := &teosv2.AddAppointmentsRequest{Appointments: []*commonv2.AddAppointmentRequest{addReq("ok 0"), addReq("ok 1")}}
	if proto.Size(two) != 2*item {
		t.Errorf("a batch of two encodes to %d bytes, batchItemSize says %d", proto.Size(two), 2*item)
	}
}
