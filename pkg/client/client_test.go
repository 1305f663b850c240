package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

func newUserKey(t *testing.T) *btcec.PrivateKey {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fastRetry keeps backoff delays tiny in tests.
func (f *fakeTower) client(t *testing.T, opts ...Option) *Tower {
	t.Helper()
	return New(f.srv.URL, f.id, newUserKey(t), append([]Option{WithRetry(3, time.Millisecond)}, opts...)...)
}

func randomAppointment(t *testing.T, blobLen int) teos.Appointment {
	t.Helper()
	b := make([]byte, teos.LocatorLen+blobLen)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	var a teos.Appointment
	copy(a.Locator[:], b)
	a.EncryptedBlob = b[teos.LocatorLen:]
	a.ToSelfDelay = 42
	return a
}

func randomAppointments(t *testing.T, n, blobLen int) []teos.Appointment {
	out := make([]teos.Appointment, n)
	for i := range out {
		out[i] = randomAppointment(t, blobLen)
	}
	return out
}

func TestRegisterAddGet(t *testing.T) {
	f := newFakeTower(t)
	c := f.client(t)
	ctx := t.Context()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	sub, err := c.Register(ctx)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if sub.UserID != c.UserID() || sub.AvailableSlots != 100 || sub.SubscriptionExpiry != 1000 {
		t.Fatalf("subscription %+v", sub)
	}
	a := randomAppointment(t, 200)
	rec, err := c.AddAppointment(ctx, a)
	if err != nil {
		t.Fatalf("AddAppointment: %v", err)
	}
	if rec.Locator != a.Locator || rec.StartBlock != 700 || !wtcrypto.VerifySignature(a.SignedBytes(), rec.UserSignature, c.UserID()) {
		t.Fatalf("receipt %+v", rec)
	}
	st, err := c.GetAppointment(ctx, a.Locator)
	if err != nil {
		t.Fatalf("GetAppointment: %v", err)
	}
	if st.Status != StatusBeingWatched || st.Appointment == nil || !bytes.Equal(st.Appointment.EncryptedBlob, a.EncryptedBlob) {
		t.Fatalf("state %+v", st)
	}
	info, err := c.GetSubscriptionInfo(ctx)
	if err != nil {
		t.Fatalf("GetSubscriptionInfo: %v", err)
	}
	if len(info.Locators) != 1 || info.Locators[0] != a.Locator {
		t.Fatalf("locators %v", info.Locators)
	}
	_, err = c.GetAppointment(ctx, randomAppointment(t, 1).Locator)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != 404 || apiErr.Code != teos.ErrCodeAppointmentNotFound {
		t.Fatalf("GetAppointment(unknown) = %v, want 404/36", err)
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		setup     func(f *fakeTower)
		retries   int
		wantCalls int
		wantErr   bool
		wantCode  int
	}{
		{"503 then success", func(f *fakeTower) { f.fail503 = 2 }, 3, 3, false, 0},
		{"503 beyond retries", func(f *fakeTower) { f.fail503 = 10 }, 2, 3, true, teos.ErrCodeServiceUnavailable},
		{"dropped connections then success", func(f *fakeTower) { f.dropConns = 2 }, 3, 3, false, 0},
		{"no retries", func(f *fakeTower) { f.fail503 = 1 }, 0, 1, true, teos.ErrCodeServiceUnavailable},
		{"4xx not retried", func(f *fakeTower) { f.rejectLoc = nil }, 3, 1, true, teos.ErrCodeAppointmentAlreadyTriggered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTower(t)
			a := randomAppointment(t, 100)
			f.set(tc.setup)
			f.set(func(f *fakeTower) {
				if f.rejectLoc == nil {
					f.rejectLoc = map[teos.Locator]bool{a.Locator: true}
				}
			})
			c := f.client(t, WithRetry(tc.retries, time.Millisecond))
			_, err := c.AddAppointment(t.Context(), a)
			if got := f.count("/add_appointment"); got != tc.wantCalls {
				t.Fatalf("%d requests, want %d (err %v)", got, tc.wantCalls, err)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantCode != 0 {
				var apiErr *APIError
				if !errors.As(err, &apiErr) || apiErr.Code != tc.wantCode {
					t.Fatalf("err = %v, want code %d", err, tc.wantCode)
				}
			}
		})
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	c := New("127.0.0.1:1", teos.UserID{}, newUserKey(t), WithRetry(5, 100*time.Millisecond))
	if !strings.HasPrefix(c.URL(), "http://") {
		t.Fatalf("URL %q lacks a scheme", c.URL())
	}
	for attempt, full := range []time.Duration{100, 200, 400, 800} {
		full *= time.Millisecond
		for range 20 {
			if d := c.backoff(attempt); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
	if d := c.backoff(60); d > maxBackoff {
		t.Fatalf("backoff(60) = %v, over the cap", d)
	}
}

// expiringCtx is a context whose deadline passes when expire is closed: a test can have it
// pass while a request is at the tower, however slow the machine.
type expiringCtx struct {
	context.Context
	expire chan struct{}
}

func (c expiringCtx) Done() <-chan struct{} { return c.expire }

func (c expiringCtx) Err() error {
	select {
	case <-c.expire:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func TestContextTimeout(t *testing.T) {
	f := newFakeTower(t)
	f.set(func(f *fakeTower) { f.delay = time.Hour }) // it answers only once the client hangs up
	c := f.client(t)
	ctx := expiringCtx{t.Context(), make(chan struct{})}
	go func() { // the deadline passes once the tower has the request
		for f.count("/get_subscription_info") == 0 && t.Context().Err() == nil {
			time.Sleep(time.Millisecond)
		}
		close(ctx.expire)
	}()
	done := make(chan error, 1)
	go func() {
		_, err := c.GetSubscriptionInfo(ctx)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute): // a hang, not a slow return
		t.Fatal("the call outlived its context")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if n := f.count("/get_subscription_info"); n != 1 {
		t.Fatalf("%d requests after the deadline, want 1", n)
	}
}

func TestBadRegistrationReceipt(t *testing.T) {
	f := newFakeTower(t)
	f.set(func(f *fakeTower) { f.badRegSig = true })
	c := f.client(t)
	if _, err := c.Register(t.Context()); !errors.Is(err, ErrMisbehaving) {
		t.Fatalf("Register = %v, want ErrMisbehaving", err)
	}
	if !errors.Is(c.Misbehaving(), ErrMisbehaving) {
		t.Fatalf("tower not marked: %v", c.Misbehaving())
	}
	if _, ok := c.Registration(); ok {
		t.Fatal("bad receipt kept as the registration")
	}
	// A misbehaving tower gets no more appointments.
	if _, err := c.AddAppointment(t.Context(), randomAppointment(t, 10)); !errors.Is(err, ErrMisbehaving) {
		t.Fatalf("AddAppointment = %v, want ErrMisbehaving", err)
	}
	if n := f.count("/add_appointment"); n != 0 {
		t.Fatalf("%d appointments sent to a misbehaving tower", n)
	}
}

func TestWrongTowerID(t *testing.T) {
	f := newFakeTower(t)
	other := teos.UserIDFromPubKey(newUserKey(t).PubKey())
	c := New(f.srv.URL, other, newUserKey(t))
	if _, err := c.Register(t.Context()); !errors.Is(err, ErrMisbehaving) || !strings.Contains(err.Error(), "is the tower id right?") {
		t.Fatalf("Register against the wrong id = %v, want ErrMisbehaving asking whether the id is right", err)
	}
	// A tower registered with before that signs with another key has no such excuse.
	f.set(func(f *fakeTower) { f.badRegSig = true })
	known := f.client(t, WithRegistration(teos.RegistrationReceipt{SubscriptionExpiry: 1}))
	if _, err := known.Register(t.Context()); !errors.Is(err, ErrMisbehaving) || strings.Contains(err.Error(), "tower id right") {
		t.Fatalf("renewal signed by another key = %v, want ErrMisbehaving without the hint", err)
	}
}

func TestBadAppointmentReceipt(t *testing.T) {
	f := newFakeTower(t)
	f.set(func(f *fakeTower) { f.badAddSig = true })
	c := f.client(t)
	if _, err := c.Register(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err := c.AddAppointment(t.Context(), randomAppointment(t, 10))
	if !errors.Is(err, ErrMisbehaving) || !strings.Contains(err.Error(), f.id.String()) {
		t.Fatalf("AddAppointment = %v, want ErrMisbehaving naming the tower", err)
	}
	if c.Misbehaving() == nil {
		t.Fatal("tower not marked")
	}
}

func TestRenewal(t *testing.T) {
	f := newFakeTower(t)
	c := f.client(t)
	first, err := c.Register(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Register(t.Context())
	if err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if second.AvailableSlots <= first.AvailableSlots {
		t.Fatalf("renewal %+v after %+v", second, first)
	}
	f.set(func(f *fakeTower) { f.noRenew = true })
	if _, err := c.Register(t.Context()); !errors.Is(err, ErrMisbehaving) {
		t.Fatalf("renewal without more slots = %v, want ErrMisbehaving", err)
	}
	if reg, _ := c.Registration(); reg.AvailableSlots != second.AvailableSlots {
		t.Fatalf("registration %+v replaced by a bad renewal", reg)
	}

	// A receipt remembered from an earlier run counts too, for the expiry.
	f2 := newFakeTower(t)
	prev := teos.RegistrationReceipt{AvailableSlots: 50, SubscriptionExpiry: 5000}
	if _, err := f2.client(t, WithRegistration(prev)).Register(t.Context()); !errors.Is(err, ErrMisbehaving) {
		t.Fatalf("renewal to expiry 1000 after a remembered 5000 = %v, want ErrMisbehaving", err)
	}
}

// A registration receipt kept from an earlier run says nothing about the slots left now: the
// user may have used them since, and an honest renewal then holds fewer slots than it did.
func TestRenewalAfterSlotsUsedInEarlierRun(t *testing.T) {
	f := newFakeTower(t)
	key := newUserKey(t)
	earlier := New(f.srv.URL, f.id, key, WithRetry(0, 0))
	sub, err := earlier.Register(t.Context()) // 100 slots, expiry 1000
	if err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeTower) { f.slots = 0 }) // that run used every slot

	later := New(f.srv.URL, f.id, key, WithRetry(0, 0), WithRegistration(sub.RegistrationReceipt))
	renewed, err := later.Register(t.Context()) // 0 + 100 slots, expiry 2000
	if err != nil {
		t.Fatalf("honest renewal after the slots of a saved registration were used: %v", err)
	}
	if renewed.AvailableSlots != 100 || renewed.SubscriptionExpiry != 2000 || later.Misbehaving() != nil {
		t.Fatalf("renewal %+v, misbehaving %v", renewed.RegistrationReceipt, later.Misbehaving())
	}
	if _, err := later.AddAppointment(t.Context(), randomAppointment(t, 100)); err != nil {
		t.Fatalf("AddAppointment after the renewal: %v", err)
	}
}

func TestSendManyBatch(t *testing.T) {
	f := newFakeTower(t)
	f.set(func(f *fakeTower) { f.batch = true })
	c := f.client(t)
	c.maxBatchItems = 100 // keeps the test fast; the real limit is checked in TestChunkRespectsBodyLimit
	appts := randomAppointments(t, 250, 50)
	f.set(func(f *fakeTower) { f.rejectLoc[appts[7].Locator] = true })
	var last atomic.Int64
	res := SendMany(t.Context(), []*Tower{c}, appts, SendOptions{Concurrency: 2, Progress: func(done, total int) {
		if total != len(appts) {
			t.Errorf("progress total %d", total)
		}
		last.Store(int64(done))
	}})
	if len(res) != len(appts) {
		t.Fatalf("%d results", len(res))
	}
	for i, r := range res {
		if r.Index != i || r.Locator != appts[i].Locator || r.Tower != c {
			t.Fatalf("result %d is for %d/%s", i, r.Index, r.Locator)
		}
		var apiErr *APIError
		switch {
		case i == 7:
			if !errors.As(r.Err, &apiErr) || apiErr.Code != teos.ErrCodeAppointmentAlreadyTriggered {
				t.Fatalf("item 7: %v, want code 35", r.Err)
			}
		case r.Err != nil || r.Receipt == nil || r.Receipt.Locator != appts[i].Locator:
			t.Fatalf("item %d: %+v", i, r)
		}
	}
	f.mu.Lock()
	sizes := append([]int(nil), f.batchSizes...)
	f.mu.Unlock()
	total := 0
	for _, s := range sizes {
		if s > c.maxBatchItems {
			t.Fatalf("batch of %d", s)
		}
		total += s
	}
	if len(sizes) != 3 || total != len(appts) || f.count("/add_appointment") != 0 {
		t.Fatalf("batches %v, %d single requests", sizes, f.count("/add_appointment"))
	}
	if last.Load() != int64(len(appts)) {
		t.Fatalf("progress ended at %d", last.Load())
	}
}

func TestSendManyBatchBadReceipt(t *testing.T) {
	f := newFakeTower(t)
	f.set(func(f *fakeTower) { f.batch, f.badAddSig = true, true })
	c := f.client(t)
	res := c.AddAppointments(t.Context(), randomAppointments(t, 3, 10), SendOptions{})
	for i, r := range res {
		if !errors.Is(r.Err, ErrMisbehaving) {
			t.Fatalf("item %d: %v, want ErrMisbehaving", i, r.Err)
		}
	}
	if c.Misbehaving() == nil {
		t.Fatal("tower not marked")
	}
}

func TestSendManyFallback(t *testing.T) {
	plain, infoOnly, lying := newFakeTower(t), newFakeTower(t), newFakeTower(t)
	infoOnly.set(func(f *fakeTower) { f.info = true })
	// lying advertises the extension, but its route answers 405.
	lying.set(func(f *fakeTower) { f.batch = true })
	towers := []*Tower{plain.client(t), infoOnly.client(t), lying.client(t)}
	lyingHandler := lying.srv.Config.Handler
	var batchPosts atomic.Int32
	lying.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/add_appointments" {
			batchPosts.Add(1)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		lyingHandler.ServeHTTP(w, r)
	})
	appts := randomAppointments(t, 40, 20)
	res := SendMany(t.Context(), towers, appts, SendOptions{Concurrency: 4})
	if len(res) != len(towers)*len(appts) {
		t.Fatalf("%d results", len(res))
	}
	for i, r := range res {
		if r.Err != nil || r.Tower != towers[i/len(appts)] || r.Index != i%len(appts) {
			t.Fatalf("result %d: tower %v index %d err %v", i, r.Tower.URL(), r.Index, r.Err)
		}
	}
	for _, f := range []*fakeTower{plain, infoOnly, lying} {
		if n := f.count("/add_appointment"); n != len(appts) {
			t.Fatalf("%d single requests, want %d", n, len(appts))
		}
		if n := f.count("/info"); n != 1 {
			t.Fatalf("%d /info probes, want 1", n)
		}
	}
	// The answer is remembered: a second round probes nothing.
	SendMany(t.Context(), towers, appts[:2], SendOptions{})
	if plain.count("/info") != 1 || batchPosts.Load() != 1 {
		t.Fatalf("probed again: /info %d, /add_appointments %d", plain.count("/info"), batchPosts.Load())
	}
}

func TestSendManyBoundsConcurrency(t *testing.T) {
	f := newFakeTower(t)
	var inFlight, peak atomic.Int32
	h := f.srv.Config.Handler
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond) // widens the window concurrent requests overlap in
		h.ServeHTTP(w, r)
	})
	res := f.client(t).AddAppointments(t.Context(), randomAppointments(t, 60, 10), SendOptions{Concurrency: 3})
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak concurrency %d, want 2..3", p)
	}
}

func TestChunkRespectsBodyLimit(t *testing.T) {
	c := New("x", teos.UserID{}, newUserKey(t))
	appts := randomAppointments(t, 1500, 1500) // ~3 KB of JSON each
	idxs := make([]int, len(appts))
	for i := range idxs {
		idxs[i] = i
	}
	chunks := c.chunk(appts, idxs)
	seen := 0
	for _, ch := range chunks {
		req := batchRequest{}
		for _, i := range ch {
			if i != seen {
				t.Fatalf("chunks out of order at %d", i)
			}
			seen++
			req.Appointments = append(req.Appointments, c.newAddRequest(&appts[i]))
		}
		b, _ := json.Marshal(req)
		if len(b) > MaxBatchBodyBytes || len(ch) > MaxBatchItems {
			t.Fatalf("chunk of %d items, %d bytes", len(ch), len(b))
		}
	}
	if seen != len(appts) || len(chunks) < 3 {
		t.Fatalf("%d chunks covering %d items", len(chunks), seen)
	}
}

func TestDiscover(t *testing.T) {
	f := newFakeTower(t)
	f.set(func(f *fakeTower) { f.info = true })
	c, err := Discover(t.Context(), f.srv.URL, newUserKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() != f.id {
		t.Fatalf("discovered %s, want %s", c.ID(), f.id)
	}
	if _, err := c.Register(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := Discover(t.Context(), newFakeTower(t).srv.URL, newUserKey(t)); err == nil {
		t.Fatal("Discover without /info succeeded")
	}
}

func TestNewAppointment(t *testing.T) {
	penalty := wire.NewMsgTx(2)
	penalty.AddTxIn(wire.NewTxIn(&wire.OutPoint{Index: 1}, nil, [][]byte{{1, 2, 3}}))
	penalty.AddTxOut(wire.NewTxOut(1000, []byte{0x51}))
	var raw bytes.Buffer
	if err := penalty.Serialize(&raw); err != nil {
		t.Fatal(err)
	}
	const display = "3e9d344993b210915c41e693df0bbf48af7a88f2f7011ad4e0264a3c69da8b33"
	a, err := NewAppointmentFromHex(display, hexOf(raw.Bytes()), 42)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Locator.String(); got != "338bda693c4a26e0d41a01f7f2887aaf" { // docs/PROTOCOL.md §3.2
		t.Fatalf("locator %s", got)
	}
	txid, _ := chainhash.NewHashFromStr(display)
	tx, err := wtcrypto.DecryptTx(a.EncryptedBlob, *txid)
	if err != nil || tx.TxHash() != penalty.TxHash() || a.ToSelfDelay != 42 {
		t.Fatalf("decrypted %v, %v", tx, err)
	}
	for _, tc := range []struct{ txid, raw string }{
		{"zz", hexOf(raw.Bytes())},
		{display[:62], hexOf(raw.Bytes())},
		{display, "abc"},
		{display, hexOf(raw.Bytes()) + "00"},
	} {
		if _, err := NewAppointmentFromHex(tc.txid, tc.raw, 42); err == nil {
			t.Fatalf("NewAppointmentFromHex(%q, %q) accepted", tc.txid, tc.raw)
		}
	}
	if _, err := NewAppointment(*txid, nil, 1); err == nil {
		t.Fatal("nil penalty accepted")
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func TestSendManyBatchRetries503(t *testing.T) {
	f := newFakeTower(t)
	f.set(func(f *fakeTower) { f.batch = true })
	c := f.client(t)
	if res := c.AddAppointments(t.Context(), randomAppointments(t, 2, 10), SendOptions{}); res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("first batch: %v %v", res[0].Err, res[1].Err)
	}
	f.set(func(f *fakeTower) { f.fail503 = 1 })
	res := c.AddAppointments(t.Context(), randomAppointments(t, 3, 10), SendOptions{})
	for i, r := range res {
		if r.Err != nil || r.Receipt == nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
	}
	if n := f.count("/add_appointments"); n != 3 {
		t.Fatalf("%d batch posts, want 3 (one retried)", n)
	}
}

func TestSendManyNilTower(t *testing.T) {
	f := newFakeTower(t)
	appts := randomAppointments(t, 2, 10)
	res := SendMany(t.Context(), []*Tower{nil, f.client(t)}, appts, SendOptions{})
	if len(res) != 4 || res[0].Err == nil || res[1].Err == nil || res[2].Err != nil || res[3].Err != nil {
		t.Fatalf("results %+v", res)
	}
}

// A renewal adds slots to what is left, so once the user has used slots it may give fewer than
// the previous registration did: an honest tower, not a misbehaving one.
func TestRenewalAfterSlotsUsed(t *testing.T) {
	f := newFakeTower(t)
	c := f.client(t)
	if _, err := c.Register(t.Context()); err != nil { // 100 slots
		t.Fatal(err)
	}
	f.set(func(f *fakeTower) { f.slots = 0 }) // every slot used up
	if _, err := c.AddAppointment(t.Context(), randomAppointment(t, 100)); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Register(t.Context()) // 0 + 100 slots
	if err != nil {
		t.Fatalf("renewal after the slots were used: %v", err)
	}
	if sub.AvailableSlots != 100 || c.Misbehaving() != nil {
		t.Fatalf("renewal %+v, misbehaving %v", sub, c.Misbehaving())
	}
	// Below what the last receipt said is still refused.
	f.set(func(f *fakeTower) { f.slots = 500 })
	if _, err := c.AddAppointment(t.Context(), randomAppointment(t, 100)); err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeTower) { f.slots = 300 })
	if _, err := c.Register(t.Context()); !errors.Is(err, ErrMisbehaving) {
		t.Fatalf("renewal to 400 slots after a receipt said 500: %v, want ErrMisbehaving", err)
	}
}

// failingTransport fails its first n round trips, as a restarting teosd refuses connections.
type failingTransport struct{ n atomic.Int32 }

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.n.Add(-1) >= 0 {
		return nil, errors.New("connect: connection refused")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// Behind a reverse proxy, a tower that restarts is a 502 for a moment (a slow one a 504): a
// passing fault, retried like a 503, not the refusal of the appointment.
func TestRetriesThroughReverseProxy(t *testing.T) {
	f := newFakeTower(t)
	target, _ := url.Parse(f.srv.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	tr := &failingTransport{}
	tr.n.Store(2)
	rp.Transport = tr
	rp.ErrorLog = log.New(io.Discard, "", 0)
	proxy := httptest.NewServer(rp)
	t.Cleanup(proxy.Close)
	c := New(proxy.URL, f.id, newUserKey(t), WithRetry(3, time.Millisecond))
	if _, err := c.AddAppointment(t.Context(), randomAppointment(t, 100)); err != nil {
		t.Fatalf("AddAppointment through a proxy whose tower restarts: %v", err)
	}
	if n := f.count("/add_appointment"); n != 1 {
		t.Fatalf("tower saw %d requests, want 1", n)
	}
}

// A rust-teos tower has neither GET /info nor POST /delete_appointment; its bare 404 must not
// read as "appointment not found".
func TestDeleteOnTowerWithoutExtension(t *testing.T) {
	f := newFakeTower(t) // /info and /delete_appointment unknown
	c := f.client(t)
	_, err := c.DeleteAppointment(t.Context(), randomAppointment(t, 10).Locator)
	if err == nil || !strings.Contains(err.Error(), "delete_appointment extension") {
		t.Fatalf("DeleteAppointment = %v, want the extension missing", err)
	}
	if n := f.count("/delete_appointment"); n != 0 {
		t.Fatalf("%d POST /delete_appointment sent to a tower without it", n)
	}
}

// IsTransient tells what may pass (the tower unreachable, a cut connection, a 503) from what
// will not (a refusal, a misbehaving tower), once the retries are spent.
func TestIsTransient(t *testing.T) {
	f := newFakeTower(t)
	c := f.client(t)
	a := randomAppointment(t, 100)
	for _, tc := range []struct {
		name  string
		setup func(f *fakeTower)
		want  bool
	}{
		{"503", func(f *fakeTower) { f.fail503 = 10 }, true},
		{"connection cut", func(f *fakeTower) { f.dropConns = 10 }, true},
		{"refused", func(f *fakeTower) { f.rejectLoc[a.Locator] = true }, false},
	} {
		f.set(func(f *fakeTower) { f.fail503, f.dropConns = 0, 0; tc.setup(f) })
		_, err := c.AddAppointment(t.Context(), a)
		if err == nil || IsTransient(err) != tc.want {
			t.Errorf("%s: %v, IsTransient %v, want %v", tc.name, err, IsTransient(err), tc.want)
		}
	}
	var apiErr *APIError
	f.set(func(f *fakeTower) { f.fail503 = 10 })
	if _, err := c.AddAppointment(t.Context(), a); !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusServiceUnavailable {
		t.Errorf("a transient 503 is not an *APIError any more: %v", err)
	}
	f.set(func(f *fakeTower) { f.fail503 = 0; delete(f.rejectLoc, a.Locator); f.badAddSig = true })
	if _, err := c.AddAppointment(t.Context(), a); !errors.Is(err, ErrMisbehaving) || IsTransient(err) {
		t.Errorf("misbehaving: %v, IsTransient %v", err, IsTransient(err))
	}
	f.srv.Close()
	if _, err := f.client(t).Register(t.Context()); err == nil || !IsTransient(err) {
		t.Errorf("tower down: %v, IsTransient %v", err, IsTransient(err))
	}
}

// A reverse proxy's 429 (nginx limit_req with limit_req_status 429) and 408 (a slow client
// body) before a tower are passing faults, not the tower's refusal of the appointment: retried,
// and transient once the retries are spent.
func TestRetriesProxyRateLimit(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusRequestTimeout} {
		f := newFakeTower(t)
		target, _ := url.Parse(f.srv.URL)
		rp := httputil.NewSingleHostReverseProxy(target)
		var limited atomic.Int32
		limited.Store(2)
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if limited.Add(-1) >= 0 {
				http.Error(w, http.StatusText(status), status)
				return
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(proxy.Close)
		c := New(proxy.URL, f.id, newUserKey(t), WithRetry(3, time.Millisecond))
		if _, err := c.AddAppointment(t.Context(), randomAppointment(t, 100)); err != nil {
			t.Fatalf("AddAppointment through a proxy answering %d twice: %v", status, err)
		}
		limited.Store(10)
		_, err := c.AddAppointment(t.Context(), randomAppointment(t, 100))
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatus != status || !IsTransient(err) {
			t.Fatalf("AddAppointment through a proxy answering only %d: %v, IsTransient %v", status, err, IsTransient(err))
		}
	}
}
