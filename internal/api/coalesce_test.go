package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/teos-go/teos/internal/api/addbatch"
	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// faultyStore is a real store whose appointment writes fail on demand: full as on a full
// disk (a fault the hold waits out), and any write touching a broken user's record as with a
// record the store cannot decode (an internal error for good). Either way nothing is written.
type faultyStore struct {
	*store.Store
	full   atomic.Bool
	broken atomic.Pointer[teos.UserID]
}

func (d *faultyStore) UpsertAppointments(items []store.AppointmentUpsert) ([]store.UpsertResult, error) {
	if d.full.Load() {
		return nil, fmt.Errorf("commit: write teos.db: %w", syscall.ENOSPC)
	}
	if b := d.broken.Load(); b != nil {
		for _, it := range items {
			if it.Appointment.UserID == *b {
				return nil, fmt.Errorf("user %s: %w", *b, store.ErrCorrupt)
			}
		}
	}
	return d.Store.UpsertAppointments(items)
}

// plugged is the coalescing edge's unary client; the add signed plugSig waits for unplug
// first, holding the edge's only call slot so the adds sent meanwhile queue.
type plugged struct {
	teosv2.PublicTowerServicesClient
	plugSig string
	entered chan struct{}
	unplug  chan struct{}
}

func (p *plugged) AddAppointment(ctx context.Context, req *commonv2.AddAppointmentRequest, opts ...grpc.CallOption) (*commonv2.AddAppointmentResponse, error) {
	if req.GetSignature() == p.plugSig {
		p.entered <- struct{}{}
		<-p.unplug
	}
	return p.PublicTowerServicesClient.AddAppointment(ctx, req, opts...)
}

// eqTower is the public half of teosd as cmd/teosd wires it (hold included), over real
// loopback HTTP and gRPC, with or without the add coalescer.
type eqTower struct {
	url    string
	client *http.Client
	disk   *faultyStore
	gk     *gatekeeper.Gatekeeper
	held   grpcapi.Hold
	co     *addbatch.Client // nil: every add is its own call
	plug   *plugged
	// finished counts the HTTP requests the handler is done with, answered or not.
	finished atomic.Int64
}

var plugUser = newUser("plug")

func plugAdd() (teos.Appointment, string) {
	a := appointment(200, []byte("plug"))
	return a, plugUser.signAdd(a)
}

func newEqTower(t *testing.T, coalesce bool, bound time.Duration) *eqTower {
	t.Helper()
	inFlight := 0
	if coalesce {
		inFlight = 1
	}
	return newEqTowerWith(t, eqConfig{inFlight: inFlight, bound: bound, slots: testSlots, duration: testDuration})
}

type eqConfig struct {
	inFlight        int // the coalescer's call slots; 0: no coalescer
	bound           time.Duration
	slots, duration uint32
}

func newEqTowerWith(t testing.TB, cfg eqConfig) *eqTower {
	t.Helper()
	coalesce, bound := cfg.inFlight > 0, cfg.bound
	db, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	disk := &faultyStore{Store: db}
	tw := &eqTower{disk: disk}
	tw.gk = gatekeeper.New(gatekeeper.Config{Store: disk, SubscriptionSlots: cfg.slots, SubscriptionDuration: cfg.duration, ExpiryDelta: 6}, testHeight)
	w := watcher.New(watcher.Config{Store: disk, Gatekeeper: tw.gk, Responder: acceptAll{}, TowerKey: privKey("tower")})
	tw.held = grpcapi.Hold{Gate: hold.New(hold.Config{Bound: bound}),
		Bitcoind: hold.NewCondition("bitcoind", 0), Store: hold.NewCondition("store", time.Millisecond)}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	public := grpcapi.NewPublic(w, tw.held.Bitcoind.IsUp, nil)
	public.SetHold(tw.held)
	teosv2.RegisterPublicTowerServicesServer(srv, public)
	teosv2.RegisterPublicTowerExtensionsServer(srv, grpcapi.NewExtensions(public))
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var client teosv2.PublicTowerServicesClient = teosv2.NewPublicTowerServicesClient(conn)
	if coalesce {
		_, sig := plugAdd()
		tw.plug = &plugged{PublicTowerServicesClient: client, plugSig: sig, entered: make(chan struct{}, 1), unplug: make(chan struct{})}
		conds := []*hold.Condition{tw.held.Bitcoind, tw.held.Store}
		// As cmd/teosd's edgeClient, with one call slot so that one plugged add queues the rest.
		tw.co = addbatch.New(tw.plug, teosv2.NewPublicTowerExtensionsClient(conn), addbatch.Config{
			MaxItems:     grpcapi.MaxBatchItems,
			InFlight:     cfg.inFlight,
			Bypass:       func() bool { return !conds[0].IsUp() || !conds[1].IsUp() },
			NoHoldHeader: grpcapi.NoHoldHeader,
		})
		for _, c := range conds {
			c.OnChange(func(up bool, _ error) {
				if !up {
					tw.co.Flush()
				}
			})
		}
		client = tw.co
	}
	api := httpapi.NewWithExtensions(client, teosv2.NewPublicTowerExtensionsClient(conn), nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer tw.finished.Add(1)
		api.ServeHTTP(w, r)
	}))
	tw.url, tw.client = ts.URL, ts.Client()
	t.Cleanup(func() {
		ts.Close()
		tw.held.Gate.Close()
		_ = conn.Close()
		srv.Stop()
		<-served
		_ = db.Close()
	})
	return tw
}

// reply is one HTTP answer, or the error of a client that left.
type reply struct {
	status int
	body   string
	err    error
}

func (tw *eqTower) post(ctx context.Context, path, body string) reply {
	s := &stack{url: tw.url, client: tw.client}
	st, got, err := s.do(ctx, path, body)
	return reply{st, got, err}
}

// eqReq is one add_appointment body; edge marks a body the HTTP edge refuses itself (it never
// reaches the internal API, so it does not queue).
type eqReq struct {
	name string
	body string
	edge bool
	ctx  context.Context // nil: the test's
}

func addReq(name string, u user, a teos.Appointment) eqReq {
	return eqReq{name: name, body: addBody(a, u.signAdd(a))}
}

// sendPlain sends reqs one after the other, each once the previous is answered.
func (tw *eqTower) sendPlain(t *testing.T, reqs []eqReq) []reply {
	out := make([]reply, len(reqs))
	for i, r := range reqs {
		out[i] = tw.post(ctxOr(t, r.ctx), "/add_appointment", r.body)
	}
	return out
}

func ctxOr(t *testing.T, ctx context.Context) context.Context {
	if ctx == nil {
		return t.Context()
	}
	return ctx
}

// queueBehindPlug sends the plug add, then each of reqs once the previous is queued, so the
// queue holds them in order; it returns a function that waits for their answers.
func (tw *eqTower) queueBehindPlug(t *testing.T, reqs []eqReq) (answers func() []reply, plug <-chan reply) {
	t.Helper()
	a, sig := plugAdd()
	plugged := make(chan reply, 1)
	go func() { plugged <- tw.post(t.Context(), "/add_appointment", addBody(a, sig)) }()
	<-tw.plug.entered
	out := make([]reply, len(reqs))
	var wg sync.WaitGroup
	queued := 0
	for i, r := range reqs {
		if r.edge {
			out[i] = tw.post(t.Context(), "/add_appointment", r.body)
			continue
		}
		wg.Go(func() { out[i] = tw.post(ctxOr(t, r.ctx), "/add_appointment", r.body) })
		queued++
		waitFor(t, fmt.Sprintf("%d adds queued", queued), func() bool { return tw.co.Queued() == queued })
	}
	return func() []reply { wg.Wait(); return out }, plugged
}

// waitFor polls cond; the bound only keeps a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// sameReplies checks the coalescing tower answered each request exactly as the plain one.
func sameReplies(t *testing.T, reqs []eqReq, plain, co []reply) {
	t.Helper()
	for i, r := range reqs {
		if plain[i] != co[i] {
			t.Errorf("%s:\n  one by one: %d %s %v\n  coalesced:  %d %s %v", r.name, plain[i].status, plain[i].body, plain[i].err,
				co[i].status, co[i].body, co[i].err)
		}
	}
}

func sameStore(t *testing.T, plain, co *eqTower) {
	t.Helper()
	if a, b := snapshotOf(t, plain.disk.Store), snapshotOf(t, co.disk.Store); !reflect.DeepEqual(a, b) {
		t.Errorf("stores differ:\n  one by one: %+v\n  coalesced:  %+v", a, b)
	}
}

// both builds a plain and a coalescing tower and runs setup on each.
func both(t *testing.T, bound time.Duration, setup func(*eqTower)) (plain, co *eqTower) {
	plain, co = newEqTower(t, false, bound), newEqTower(t, true, bound)
	for _, tw := range []*eqTower{plain, co} {
		for _, u := range []user{plugUser, newUser("alice"), newUser("bob"), newUser("dave"), newUser("mallory")} {
			if _, err := tw.gk.Register(u.id); err != nil {
				t.Fatal(err)
			}
		}
		if setup != nil {
			setup(tw)
		}
	}
	return plain, co
}

// Every answer add_appointment gives, given in one batch, is the same as one by one, and so
// is the store after it: receipts, a second add of the same user (slots charged in order),
// an update of an appointment sent in the same batch, not enough slots, a wrong signature, an
// expired subscription, an appointment already triggered, a bad locator.
func TestCoalescedAnswersEqualOneByOne(t *testing.T) {
	alice, bob, dave, carol, eve := newUser("alice"), newUser("bob"), newUser("dave"), newUser("carol"), newUser("eve")
	expiredSetup := func(tw *eqTower) {
		// carol's subscription ends before the others': registered earlier.
		tw.gk.SetHeight(testHeight - testDuration)
		if _, err := tw.gk.Register(carol.id); err != nil {
			t.Fatal(err)
		}
		tw.gk.SetHeight(testHeight)
		triggered := appointment(40, []byte("dave"))
		if r := tw.post(t.Context(), "/add_appointment", addBody(triggered, dave.signAdd(triggered))); r.status != http.StatusOK {
			t.Fatalf("dave's appointment: %+v", r)
		}
		if err := tw.disk.PutTracker(&store.Tracker{UUID: teos.NewUUID(triggered.Locator, dave.id), DisputeTx: []byte{1},
			PenaltyTx: []byte{2}, Height: testHeight}); err != nil {
			t.Fatal(err)
		}
	}
	plain, co := both(t, time.Hour, expiredSetup)
	a1 := appointment(1, []byte("alice one"))
	a1b := appointment(1, []byte("alice one, updated"))
	badLoc := `{"appointment":{"locator":"00","encrypted_blob":"00","to_self_delay":42},"signature":"x"}`
	reqs := []eqReq{
		addReq("receipt", alice, a1),
		addReq("same user again", bob, appointment(2, []byte("bob two"))),
		addReq("same user, second slot", bob, appointment(3, []byte("bob three"))),
		addReq("not enough slots", bob, appointment(4, []byte("bob four"))),
		addReq("update in the same batch", alice, a1b),
		addReq("wrong signature", eve, appointment(5, []byte("eve"))),
		addReq("expired subscription", carol, appointment(6, []byte("carol"))),
		addReq("already triggered", dave, appointment(40, []byte("dave"))),
		{name: "bad locator", body: badLoc, edge: true},
		addReq("receipt after refusals", dave, appointment(41, []byte("dave 2"))),
	}
	a, sig := plugAdd()
	plain.post(t.Context(), "/add_appointment", addBody(a, sig))
	want := plain.sendPlain(t, reqs)

	before := co.co.Sizes()
	answers, plug := co.queueBehindPlug(t, reqs)
	close(co.plug.unplug)
	if r := <-plug; r.status != http.StatusOK {
		t.Fatalf("plug add: %+v", r)
	}
	got := answers()
	sameReplies(t, reqs, want, got)
	sameStore(t, plain, co)
	// The plug alone, then one batch of 9 (bucket 4 is 9 to 16).
	if s := co.co.Sizes(); s.Calls-before.Calls != 2 || s.Adds-before.Adds != 10 || s.Buckets[4]-s.Buckets[3] != 1 {
		t.Errorf("calls %+v (before %+v): want the plug alone and one batch of 9", s, before)
	}
	for i, r := range want {
		t.Logf("%-26s %d %.90s", reqs[i].name, r.status, r.body)
	}
}

// A record the store cannot read, touched by one item, fails its whole batch, one transaction;
// each item is then sent again alone, so the others still get their receipts, and that one gets
// the answer it gets alone: 503 / 7, the database needs repair (DataLoss).
func TestCoalescedInternalErrorEqualsOneByOne(t *testing.T) {
	alice, bob, mallory := newUser("alice"), newUser("bob"), newUser("mallory")
	plain, co := both(t, time.Hour, func(tw *eqTower) { tw.disk.broken.Store(&mallory.id) })
	reqs := []eqReq{
		addReq("receipt", alice, appointment(1, []byte("alice"))),
		addReq("internal error", mallory, appointment(2, []byte("mallory"))),
		addReq("receipt too", bob, appointment(3, []byte("bob"))),
	}
	a, sig := plugAdd()
	plain.post(t.Context(), "/add_appointment", addBody(a, sig))
	want := plain.sendPlain(t, reqs)
	if want[1].status != http.StatusServiceUnavailable || want[1].body != errorBody(grpcapi.MsgDamaged, teos.ErrCodeInvalidSignatureOrSubscriptionError) {
		t.Fatalf("one by one, the broken record: %+v", want[1])
	}
	answers, plug := co.queueBehindPlug(t, reqs)
	close(co.plug.unplug)
	<-plug
	sameReplies(t, reqs, want, answers())
	sameStore(t, plain, co)
	if s := co.co.Sizes(); s.Calls != 5 || s.Adds != 7 { // plug, batch of 3, each again alone
		t.Errorf("calls %+v: want the plug, a batch of 3, then 3 alone", s)
	}
}

// bitcoind unreachable while adds are queued: with no hold every add is answered 503 / 32 at
// once; with a hold they are held and served once it is back, as one by one.
func TestCoalescedBitcoindOutageEqualsOneByOne(t *testing.T) {
	alice, bob, dave := newUser("alice"), newUser("bob"), newUser("dave")
	reqs := []eqReq{
		addReq("alice", alice, appointment(1, []byte("alice"))),
		addReq("bob", bob, appointment(2, []byte("bob"))),
		addReq("dave", dave, appointment(3, []byte("dave"))),
	}
	t.Run("no hold", func(t *testing.T) {
		plain, co := both(t, 0, nil)
		a, sig := plugAdd()
		plain.held.Bitcoind.Down(errors.New("bitcoind down"))
		want := plain.sendPlain(t, append([]eqReq{{name: "plug", body: addBody(a, sig)}}, reqs...))[1:]
		for _, r := range want {
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("one by one: %+v, want 503", r)
			}
		}
		answers, plug := co.queueBehindPlug(t, reqs)
		co.held.Bitcoind.Down(errors.New("bitcoind down")) // flushes the queue
		got := answers()
		close(co.plug.unplug)
		<-plug
		sameReplies(t, reqs, want, got)
		sameStore(t, plain, co)
	})
	t.Run("held", func(t *testing.T) {
		plain, co := both(t, time.Hour, nil)
		a, sig := plugAdd()
		plain.post(t.Context(), "/add_appointment", addBody(a, sig))
		plain.held.Bitcoind.Down(errors.New("bitcoind down"))
		want := make([]reply, len(reqs))
		var wg sync.WaitGroup
		for i, r := range reqs { // held: concurrent, and answered only once bitcoind is back
			wg.Go(func() { want[i] = plain.post(t.Context(), "/add_appointment", r.body) })
		}
		waitFor(t, "3 held", func() bool { return plain.held.Gate.Held() == len(reqs) })
		plain.held.Bitcoind.Up()
		wg.Wait()

		answers, plug := co.queueBehindPlug(t, reqs)
		close(co.plug.unplug)
		<-plug // served before the outage: the batch is in flight or done when it starts
		co.held.Bitcoind.Down(errors.New("bitcoind down"))
		late := newUser("late")
		if _, err := co.gk.Register(late.id); err != nil {
			t.Fatal(err)
		}
		lateAdd := make(chan reply, 1)
		go func() {
			lateAdd <- co.post(t.Context(), "/add_appointment", addBody(appointment(9, []byte("late")), late.signAdd(appointment(9, []byte("late")))))
		}()
		waitFor(t, "the add during the outage held alone", func() bool { return co.held.Gate.Held() >= 1 })
		co.held.Bitcoind.Up()
		sameReplies(t, reqs, want, answers())
		if r := <-lateAdd; r.status != http.StatusOK {
			t.Errorf("add held during the outage: %+v", r)
		}
	})
}

// A full disk under a batch is not held as a batch: its adds are sent again one by one and
// held each on its own, and served once the disk has room, as one by one; past the hold's
// bound every add is answered 503 / 32 and nothing is written.
func TestCoalescedDiskFullEqualsOneByOne(t *testing.T) {
	alice, bob, dave := newUser("alice"), newUser("bob"), newUser("dave")
	reqs := []eqReq{
		addReq("alice", alice, appointment(1, []byte("alice"))),
		addReq("bob", bob, appointment(2, []byte("bob"))),
		addReq("dave", dave, appointment(3, []byte("dave"))),
	}
	for _, tc := range []struct {
		name  string
		bound time.Duration
	}{{"held then served", time.Hour}, {"past the bound", 50 * time.Millisecond}, {"no hold", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			plain, co := both(t, tc.bound, nil)
			a, sig := plugAdd()
			plain.post(t.Context(), "/add_appointment", addBody(a, sig))
			plain.disk.full.Store(true)
			want := make([]reply, len(reqs))
			var wg sync.WaitGroup
			for i, r := range reqs {
				wg.Go(func() { want[i] = plain.post(t.Context(), "/add_appointment", r.body) })
			}
			if tc.bound == time.Hour {
				waitFor(t, "3 held", func() bool { return plain.held.Gate.Held() == len(reqs) })
			} else {
				wg.Wait()
			}
			plain.disk.full.Store(false)
			wg.Wait()

			answers, plug := co.queueBehindPlug(t, reqs)
			co.disk.full.Store(true)
			close(co.plug.unplug) // the plug's write fails: the store goes down and the queue is flushed
			if tc.bound == time.Hour {
				waitFor(t, "the plug and each add held", func() bool { return co.held.Gate.Held() == 1+len(reqs) })
			}
			var got []reply
			if tc.bound == time.Hour {
				co.disk.full.Store(false)
				got = answers()
				<-plug
			} else {
				got = answers()
				// The plug too is answered before the disk is freed: a held request at its bound
				// may still get one trial, which would then succeed.
				<-plug
				co.disk.full.Store(false)
			}
			sameReplies(t, reqs, want, got)
			if tc.bound == time.Hour {
				sameStore(t, plain, co)
			} else {
				for i, r := range got {
					if r.status != http.StatusServiceUnavailable || r.body != errorBody(msgUnavailable, teos.ErrCodeServiceUnavailable) {
						t.Errorf("%s: %+v, want 503 / 32", reqs[i].name, r)
					}
				}
				if _, n, _, err := co.disk.Counts(); err != nil || n != 0 { // the plug's failed too
					t.Errorf("%d appointments stored after refusals (%v), want none", n, err)
				}
			}
		})
	}
}

// A batch caught by a fault is not held as one: its adds are held one by one, so a client
// that leaves drops its own add only, as one by one, and the others are served.
func TestCoalescedClientLeaves(t *testing.T) {
	alice, bob, dave := newUser("alice"), newUser("bob"), newUser("dave")
	_, co := both(t, time.Hour, nil)
	leaving, leave := context.WithCancel(t.Context())
	reqs := []eqReq{
		addReq("alice", alice, appointment(1, []byte("alice"))),
		{name: "bob leaves", body: addReq("", bob, appointment(2, []byte("bob"))).body, ctx: leaving},
		addReq("dave", dave, appointment(3, []byte("dave"))),
	}
	answers, plug := co.queueBehindPlug(t, reqs)
	co.disk.full.Store(true)
	close(co.plug.unplug)
	waitFor(t, "the plug and each add held", func() bool { return co.held.Gate.Held() == 1+len(reqs) })
	finished := co.finished.Load()
	leave()
	waitFor(t, "the edge done with bob's request", func() bool { return co.finished.Load() == finished+1 })
	co.disk.full.Store(false)
	got := answers()
	<-plug
	if got[0].status != http.StatusOK || got[2].status != http.StatusOK {
		t.Errorf("staying clients: %+v, %+v, want receipts", got[0], got[2])
	}
	if got[1].err == nil {
		t.Errorf("leaving client answered %+v", got[1])
	}
	// bob's held add was dropped when he left, as one by one.
	if _, n, _, err := co.disk.Counts(); err != nil || n != 3 {
		t.Errorf("%d appointments stored (%v), want the plug's, alice's and dave's", n, err)
	}
	if _, err := co.disk.Appointment(teos.NewUUID(locator(2), bob.id)); err == nil {
		t.Error("bob's add was written after he left")
	}

	// Every client of a caught batch leaves: nothing of it is held or written.
	_, co = both(t, time.Hour, nil)
	ctx1, cancel1 := context.WithCancel(t.Context())
	ctx2, cancel2 := context.WithCancel(t.Context())
	reqs = []eqReq{
		{name: "alice", body: addReq("", alice, appointment(1, []byte("alice"))).body, ctx: ctx1},
		{name: "bob", body: addReq("", bob, appointment(2, []byte("bob"))).body, ctx: ctx2},
	}
	answers, plug = co.queueBehindPlug(t, reqs)
	co.disk.full.Store(true)
	close(co.plug.unplug)
	waitFor(t, "the plug and each add held", func() bool { return co.held.Gate.Held() == 1+len(reqs) })
	cancel1()
	cancel2()
	waitFor(t, "both adds released", func() bool { return co.held.Gate.Held() == 1 })
	answers()
	co.disk.full.Store(false)
	<-plug
	if _, n, _, err := co.disk.Counts(); err != nil || n != 1 {
		t.Errorf("%d appointments stored (%v), want only the plug's", n, err)
	}
}

// BenchmarkAddAppointmentHTTPCoalesced is BenchmarkAddAppointmentHTTP on the public half of
// teosd as it wires it (with the hold), each add its own internal call ("one-by-one") or
// coalesced with n calls in flight ("coalesced-n"). One op is one add; it also reports the
// mean adds per internal call.
func BenchmarkAddAppointmentHTTPCoalesced(b *testing.B) {
	for _, inFlight := range []int{0, 1, 2, 3, 4} {
		name := "one-by-one"
		if inFlight > 0 {
			name = fmt.Sprint("coalesced-", inFlight)
		}
		b.Run(name, func(b *testing.B) {
			reqs := presigned(b.N)
			crypto := cryptoCost(b, reqs)
			tw := newEqTowerWith(b, eqConfig{inFlight: inFlight, bound: time.Minute, slots: 1 << 30, duration: 1 << 20})
			registerBenchUsers(b, tw.gk)
			cpu := postAdds(b, tw.url+"/add_appointment", reqs)
			reportBound(b, crypto, cpu)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appts/s")
			if tw.co != nil {
				s := tw.co.Sizes()
				b.ReportMetric(float64(s.Adds)/float64(max(s.Calls, 1)), "adds/call")
			}
		})
	}
}

// Each client updates its appointment over and over, one request after the other, while the
// others do the same: with batches in flight side by side, the store ends with every
// client's last update (an add is answered only once its batch is committed, so a later
// update always goes in a later batch).
func TestCoalescedSequentialUpdatesStayInOrder(t *testing.T) {
	tw := newEqTowerWith(t, eqConfig{inFlight: 2, bound: time.Minute, slots: 1 << 20, duration: 1 << 10})
	const clients, updates = 16, 20
	users := make([]user, clients)
	for i := range users {
		users[i] = newUser(fmt.Sprint("updater ", i))
		if _, err := tw.gk.Register(users[i].id); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			for n := range updates {
				a := appointment(byte(i), []byte(fmt.Sprintf("update %d", n)))
				if r := tw.post(t.Context(), "/add_appointment", addBody(a, u.signAdd(a))); r.status != http.StatusOK {
					t.Errorf("client %d update %d: %+v", i, n, r)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, u := range users {
		got, err := tw.disk.Appointment(teos.NewUUID(locator(byte(i)), u.id))
		if err != nil || string(got.EncryptedBlob) != fmt.Sprintf("update %d", updates-1) {
			t.Errorf("client %d: stored %q (%v), want its last update", i, got.EncryptedBlob, err)
		}
	}
	s := tw.co.Sizes()
	if s.Adds != clients*updates {
		t.Errorf("%d adds went through the coalescer, want %d", s.Adds, clients*updates)
	}
	t.Logf("%d adds in %d calls", s.Adds, s.Calls)
}
