// Package api_test runs the public API end to end in one process: an HTTP client on real
// loopback TCP, httpapi, the internal gRPC service on real loopback TCP, the watcher and
// gatekeeper, and a real bbolt file with fsync on.
package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// Small subscription so slot and expiry limits are a few requests away.
const (
	testSlots    = 2
	testDuration = 10
	testHeight   = 1000
	testExpiry   = testHeight + testDuration
)

const (
	msgUnavailable      = "Service currently unavailable"
	msgInvalidUserID    = "Provided public key does not match expected format (33-byte compressed key)"
	msgMaxSlots         = "Subscription maximum slots count reached"
	msgAddUnauthorized  = "Invalid signature or user does not have enough slots available"
	msgGetUnauthorized  = "User cannot be authenticated"
	msgInfoUnauthorized = "User not found. Have you registered?"
	msgAlreadyTriggered = "The provided appointment has already been triggered"
	msgNotFound         = "Appointment not found"
)

// acceptAll is a responder that takes every breach; these tests mine no block.
type acceptAll struct{}

func (acceptAll) BlockInChain(context.Context, chainhash.Hash) (bool, error) { return true, nil }

func (acceptAll) HandleBreach(_ context.Context, id teos.UUID, _, _ *wire.MsgTx) (*store.Tracker, error) {
	return &store.Tracker{UUID: id}, nil
}

type stackConfig struct {
	slots, duration, height uint32
}

// stack is the public half of teosd, wired as cmd/teosd does.
type stack struct {
	tb        testing.TB
	path      string
	store     *store.Store
	gk        *gatekeeper.Gatekeeper
	towerKey  *btcec.PrivateKey
	towerID   teos.UserID
	reachable atomic.Bool
	url       string
	client    *http.Client
	closeOnce sync.Once
	closeFn   func()
}

func newStack(tb testing.TB) *stack {
	return newStackWith(tb, stackConfig{slots: testSlots, duration: testDuration, height: testHeight})
}

func newStackWith(tb testing.TB, cfg stackConfig) *stack {
	tb.Helper()
	s := &stack{tb: tb, path: filepath.Join(tb.TempDir(), "teos.db")}
	db, err := store.Open(s.path, nil) // fsync on every commit
	if err != nil {
		tb.Fatal(err)
	}
	s.store = db
	s.towerKey = privKey("tower")
	s.towerID = teos.UserIDFromPubKey(s.towerKey.PubKey())
	s.gk = gatekeeper.New(gatekeeper.Config{
		Store:                db,
		SubscriptionSlots:    cfg.slots,
		SubscriptionDuration: cfg.duration,
		ExpiryDelta:          6,
	}, cfg.height)
	w := watcher.New(watcher.Config{Store: db, Gatekeeper: s.gk, Responder: acceptAll{}, TowerKey: s.towerKey})
	s.reachable.Store(true)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = db.Close()
		tb.Fatal(err)
	}
	grpcSrv := grpc.NewServer()
	public := grpcapi.NewPublic(w, s.reachable.Load, nil)
	teosv2.RegisterPublicTowerServicesServer(grpcSrv, public)
	teosv2.RegisterPublicTowerExtensionsServer(grpcSrv, grpcapi.NewExtensions(public))
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = grpcSrv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		grpcSrv.Stop()
		_ = db.Close()
		tb.Fatal(err)
	}
	ts := httptest.NewServer(httpapi.NewWithExtensions(teosv2.NewPublicTowerServicesClient(conn), teosv2.NewPublicTowerExtensionsClient(conn), nil))
	s.url = ts.URL
	s.client = ts.Client()
	s.closeFn = func() {
		ts.Close()
		_ = conn.Close()
		grpcSrv.Stop()
		<-served
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	}
	tb.Cleanup(s.close)
	return s
}

// close stops the servers and closes the database; later calls do nothing.
func (s *stack) close() { s.closeOnce.Do(s.closeFn) }

func privKey(seed string) *btcec.PrivateKey {
	sum := sha256.Sum256([]byte(seed))
	k, _ := btcec.PrivKeyFromBytes(sum[:])
	return k
}

type user struct {
	key *btcec.PrivateKey
	id  teos.UserID
}

func newUser(seed string) user {
	k := privKey("user " + seed)
	return user{key: k, id: teos.UserIDFromPubKey(k.PubKey())}
}

func (u user) sign(msg []byte) string { return wtcrypto.SignMessage(msg, u.key) }

func (u user) signAdd(a teos.Appointment) string { return u.sign(a.SignedBytes()) }

func (u user) signGet(loc teos.Locator) string { return u.sign(teos.GetAppointmentMessage(loc)) }

func (u user) signInfo() string { return u.sign(teos.GetSubscriptionInfoMessage) }

func locator(i byte) teos.Locator {
	var l teos.Locator
	for j := range l {
		l[j] = i ^ byte(j*17)
	}
	return l
}

func appointment(i byte, blob []byte) teos.Appointment {
	return teos.Appointment{Locator: locator(i), EncryptedBlob: blob, ToSelfDelay: 42}
}

func registerBody(id string) string { return `{"user_id":"` + id + `"}` }

func addBody(a teos.Appointment, sig string) string {
	return fmt.Sprintf(`{"appointment":{"locator":"%s","encrypted_blob":"%x","to_self_delay":%d},"signature":"%s"}`,
		a.Locator, a.EncryptedBlob, a.ToSelfDelay, sig)
}

func getBody(loc teos.Locator, sig string) string {
	return fmt.Sprintf(`{"locator":"%s","signature":"%s"}`, loc, sig)
}

func infoBody(sig string) string { return `{"signature":"` + sig + `"}` }

func errorBody(msg string, code int) string {
	return fmt.Sprintf(`{"error":%q,"error_code":%d}`, msg, code)
}

// post sends body with Content-Length set, as every client does.
func (s *stack) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	status, got, err := s.do(t.Context(), path, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, got
}

// do is post for any goroutine: it reports failures instead of stopping the test.
func (s *stack) do(ctx context.Context, path, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusRequestEntityTooLarge && ct != "application/json" {
		return 0, "", fmt.Errorf("POST %s: Content-Type %q, want application/json", path, ct)
	}
	return resp.StatusCode, string(got), nil
}

// expectOK posts body and checks a 200 whose body is exactly want.
func (s *stack) expectOK(t *testing.T, path, body, want string) {
	t.Helper()
	status, got := s.post(t, path, body)
	if status != http.StatusOK || got != want {
		t.Fatalf("POST %s %s:\n got %d %s\nwant 200 %s", path, body, status, got, want)
	}
}

// expectError posts body, checks the exact error reply, and checks that the refused request
// changed nothing in the database.
func (s *stack) expectError(t *testing.T, path, body string, wantStatus int, msg string, code int) {
	t.Helper()
	before := s.snapshot(t)
	status, got := s.post(t, path, body)
	if want := errorBody(msg, code); status != wantStatus || got != want {
		t.Errorf("POST %s %s:\n got %d %s\nwant %d %s", path, body, status, got, wantStatus, want)
	}
	if after := s.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("POST %s was refused but changed the store:\nbefore %+v\nafter  %+v", path, before, after)
	}
}

// dbState is everything the public API can change.
type dbState struct {
	Users        map[teos.UserID]store.UserInfo
	Appointments map[teos.UUID]store.Appointment
	Trackers     map[teos.UUID]store.Tracker
	Counts       [3]int
}

func (s *stack) snapshot(t testing.TB) dbState {
	t.Helper()
	return snapshotOf(t, s.store)
}

func snapshotOf(t testing.TB, db *store.Store) dbState {
	t.Helper()
	st := dbState{
		Users:        map[teos.UserID]store.UserInfo{},
		Appointments: map[teos.UUID]store.Appointment{},
		Trackers:     map[teos.UUID]store.Tracker{},
	}
	ids, err := db.Users()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		info, ok, err := db.User(id)
		if err != nil || !ok {
			t.Fatalf("user %s listed but not loaded: ok=%v err=%v", id, ok, err)
		}
		st.Users[id] = info
	}
	err = db.ForEachAppointment(nil, func(a *store.Appointment, tr *store.Tracker) error {
		st.Appointments[a.UUID()] = *a
		if tr != nil {
			st.Trackers[tr.UUID] = *tr
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Counts[0], st.Counts[1], st.Counts[2], err = db.Counts()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// register registers u over HTTP and returns the reply body.
func (s *stack) register(t *testing.T, u user) string {
	t.Helper()
	status, body := s.post(t, "/register", registerBody(u.id.String()))
	if status != http.StatusOK {
		t.Fatalf("register %s: %d %s", u.id, status, body)
	}
	return body
}

// add sends an appointment signed by u and returns the reply body.
func (s *stack) add(t *testing.T, u user, a teos.Appointment) string {
	t.Helper()
	status, body := s.post(t, "/add_appointment", addBody(a, u.signAdd(a)))
	if status != http.StatusOK {
		t.Fatalf("add_appointment %s: %d %s", a.Locator, status, body)
	}
	return body
}

func (s *stack) putTracker(t *testing.T, u user, loc teos.Locator, dispute, penalty chainhash.Hash, rawPenalty []byte) {
	t.Helper()
	err := s.store.PutTracker(&store.Tracker{
		UUID:        teos.NewUUID(loc, u.id),
		DisputeTx:   []byte{0xd1},
		PenaltyTx:   rawPenalty,
		DisputeTxID: dispute,
		PenaltyTxID: penalty,
		Height:      testHeight,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (s *stack) userInfo(t *testing.T, u user) store.UserInfo {
	t.Helper()
	info, ok, err := s.store.User(u.id)
	if err != nil || !ok {
		t.Fatalf("user %s: ok=%v err=%v", u.id, ok, err)
	}
	return info
}

func registerReply(s *stack, u user, slots, start, expiry uint32) string {
	r := teos.RegistrationReceipt{UserID: u.id, AvailableSlots: slots, SubscriptionStart: start, SubscriptionExpiry: expiry}
	return fmt.Sprintf(`{"user_id":"%s","available_slots":%d,"subscription_start":%d,"subscription_expiry":%d,"subscription_signature":"%s"}`,
		u.id, slots, start, expiry, wtcrypto.SignMessage(r.SignedBytes(), s.towerKey))
}

func addReply(s *stack, loc teos.Locator, userSig string, start, slots, expiry uint32) string {
	return fmt.Sprintf(`{"locator":"%s","start_block":%d,"signature":"%s","available_slots":%d,"subscription_expiry":%d}`,
		loc, start, wtcrypto.SignMessage(teos.AppointmentReceiptBytes(userSig, start), s.towerKey), slots, expiry)
}

// field extracts a string field from a flat JSON reply without a decoder, so the test does
// not depend on the reply parsing leniently.
func field(t *testing.T, body, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, `"`+name+`":"`)
	if !ok {
		t.Fatalf("no %q in %s", name, body)
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func TestPing(t *testing.T) {
	s := newStack(t)
	for _, reachable := range []bool{true, false} {
		s.reachable.Store(reachable)
		resp, err := s.client.Get(s.url + "/ping")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) != 0 {
			t.Errorf("reachable=%v: GET /ping = %d %q, want 200 and no body", reachable, resp.StatusCode, body)
		}
	}
}

func TestUnreachable(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)
	a := appointment(1, []byte{1})
	s.add(t, alice, a)
	s.reachable.Store(false)

	// Well-formed requests from a registered user all reach the core, which refuses them.
	for path, body := range map[string]string{
		"/register":              registerBody(newUser("bob").id.String()),
		"/add_appointment":       addBody(appointment(2, []byte{2}), alice.signAdd(appointment(2, []byte{2}))),
		"/get_appointment":       getBody(a.Locator, alice.signGet(a.Locator)),
		"/get_subscription_info": infoBody(alice.signInfo()),
	} {
		s.expectError(t, path, body, http.StatusServiceUnavailable, msgUnavailable, teos.ErrCodeServiceUnavailable)
	}
	// Renewing an existing user while unreachable must not renew it.
	s.expectError(t, "/register", registerBody(alice.id.String()), http.StatusServiceUnavailable, msgUnavailable, teos.ErrCodeServiceUnavailable)

	// Malformed-but-parsable requests never reach the core (PROTOCOL 5.3 step 6).
	loc15 := strings.Repeat("ab", 15)
	for _, tc := range []struct {
		path, body, msg string
		code            int
	}{
		{"/register", `{"user_id":"aa"}`, "Wrong `user_id` field size. Expected 33, received 1", teos.ErrCodeWrongFieldSize},
		{"/register", `{"user_id":""}`, "`user_id` field is empty", teos.ErrCodeEmptyField},
		{"/add_appointment", `{"appointment":{"locator":"` + loc15 + `","encrypted_blob":"","to_self_delay":0},"signature":"x"}`,
			"Wrong `locator` field size. Expected 16, received 15", teos.ErrCodeWrongFieldSize},
		{"/add_appointment", `{"signature":"x"}`, "missing field `appointment`", teos.ErrCodeMissingField},
		{"/get_appointment", getBody(a.Locator, ""), "`signature` field is empty", teos.ErrCodeEmptyField},
		{"/get_subscription_info", `{}`, "missing field `signature`", teos.ErrCodeMissingField},
	} {
		s.expectError(t, tc.path, tc.body, http.StatusBadRequest, tc.msg, tc.code)
	}

	s.reachable.Store(true)
	s.expectOK(t, "/get_subscription_info", infoBody(alice.signInfo()),
		fmt.Sprintf(`{"available_slots":1,"subscription_expiry":%d,"locators":["%s"]}`, testExpiry, a.Locator))
}

func TestRegister(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")

	body := s.register(t, alice)
	if want := registerReply(s, alice, testSlots, testHeight, testExpiry); body != want {
		t.Fatalf("register:\n got %s\nwant %s", body, want)
	}
	receipt := teos.RegistrationReceipt{UserID: alice.id, AvailableSlots: testSlots, SubscriptionStart: testHeight, SubscriptionExpiry: testExpiry}
	if !wtcrypto.VerifySignature(receipt.SignedBytes(), field(t, body, "subscription_signature"), s.towerID) {
		t.Fatal("registration receipt does not recover to the tower id")
	}

	// Renewal adds slots, extends from the old expiry and keeps the start height.
	s.gk.SetHeight(testHeight + 5)
	body = s.register(t, alice)
	if want := registerReply(s, alice, 2*testSlots, testHeight, testExpiry+testDuration); body != want {
		t.Fatalf("renewal:\n got %s\nwant %s", body, want)
	}
	receipt = teos.RegistrationReceipt{UserID: alice.id, AvailableSlots: 2 * testSlots, SubscriptionStart: testHeight, SubscriptionExpiry: testExpiry + testDuration}
	if !wtcrypto.VerifySignature(receipt.SignedBytes(), field(t, body, "subscription_signature"), s.towerID) {
		t.Fatal("renewal receipt does not recover to the tower id")
	}
}

func TestRegisterInvalidKey(t *testing.T) {
	s := newStack(t)
	for _, id := range []string{
		"050dea894c967319407265764aba31bdef75d463f96800f34dd6df61380d82dfc0", // VECTORS §4, prefix 05
		"020000000000000000000000000000000000000000000000000000000000000005", // x=5 is not on the curve
		"03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // x >= p
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00", // VECTORS §4, prefix 00
		"040dea894c967319407265764aba31bdef75d463f96800f34dd6df61380d82dfc0", // uncompressed prefix
	} {
		s.expectError(t, "/register", registerBody(id), http.StatusBadRequest, msgInvalidUserID, teos.ErrCodeWrongFieldFormat)
	}
	// VECTORS §4's valid id is accepted, and the reply echoes it.
	const valid = "020dea894c967319407265764aba31bdef75d463f96800f34dd6df61380d82dfc0"
	_, body := s.post(t, "/register", registerBody(valid))
	if got := field(t, body, "user_id"); got != valid {
		t.Fatalf("user_id %s, want %s", got, valid)
	}
}

func TestRegisterSlotsOverflow(t *testing.T) {
	s := newStack(t)
	alice, bob := newUser("alice"), newUser("bob")
	setSlots := func(u user, slots uint32) {
		_, err := s.store.UpdateUser(u.id, func(store.UserInfo, bool) (store.UserInfo, error) {
			return store.UserInfo{AvailableSlots: slots, SubscriptionStart: testHeight, SubscriptionExpiry: testExpiry}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setSlots(alice, math.MaxUint32-testSlots+1)
	s.expectError(t, "/register", registerBody(alice.id.String()), http.StatusBadRequest, msgMaxSlots, teos.ErrCodeRegistrationResourceExhausted)

	// Landing exactly on MaxUint32 is not an overflow.
	setSlots(bob, math.MaxUint32-testSlots)
	s.expectOK(t, "/register", registerBody(bob.id.String()), registerReply(s, bob, math.MaxUint32, testHeight, testExpiry+testDuration))
	s.expectError(t, "/register", registerBody(bob.id.String()), http.StatusBadRequest, msgMaxSlots, teos.ErrCodeRegistrationResourceExhausted)
}

func TestAddAppointment(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)

	a := appointment(1, []byte{0xde, 0xad})
	sig := alice.signAdd(a)
	s.expectOK(t, "/add_appointment", addBody(a, sig), addReply(s, a.Locator, sig, testHeight, testSlots-1, testExpiry))
	_, body := s.post(t, "/add_appointment", addBody(a, sig)) // an update: same size, no charge
	if !wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(sig, testHeight), field(t, body, "signature"), s.towerID) {
		t.Fatal("appointment receipt does not recover to the tower id")
	}

	// An update resets start_block to the current height.
	s.gk.SetHeight(testHeight + 3)
	s.expectOK(t, "/add_appointment", addBody(a, sig), addReply(s, a.Locator, sig, testHeight+3, testSlots-1, testExpiry))

	stored, err := s.store.Appointment(teos.NewUUID(a.Locator, alice.id))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.EncryptedBlob, a.EncryptedBlob) || stored.ToSelfDelay != 42 || stored.UserSignature != sig || stored.StartBlock != testHeight+3 {
		t.Fatalf("stored %+v", stored)
	}
}

// Blobs over 2048 bytes would cost 2 slots, but the 2048-byte body limit keeps them out of
// HTTP (a hex blob of 1024 bytes alone is 2048 characters), so over HTTP an appointment costs
// 0 slots (empty blob) or 1.
func TestAddAppointmentChargesAndRefunds(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)
	empty := appointment(1, nil)
	one := appointment(1, []byte{7})
	steps := []struct {
		a         teos.Appointment
		wantSlots uint32
	}{
		{empty, 2}, // empty blob: accepted, 0 slots
		{one, 1},   // update 0 -> 1 slot: charged
		{one, 1},   // same size: nothing
		{empty, 2}, // update 1 -> 0: refunded
		{appointment(2, []byte{1, 2, 3}), 1},
		{appointment(3, bytes.Repeat([]byte{9}, 900)), 0},
		{appointment(4, nil), 0}, // empty blob needs no slot
		{empty, 0},
	}
	for i, st := range steps {
		sig := alice.signAdd(st.a)
		s.expectOK(t, "/add_appointment", addBody(st.a, sig), addReply(s, st.a.Locator, sig, testHeight, st.wantSlots, testExpiry))
		if got := s.userInfo(t, alice).AvailableSlots; got != st.wantSlots {
			t.Fatalf("step %d: stored slots %d, want %d", i, got, st.wantSlots)
		}
	}
	// With no slot left, growing an empty blob or adding a new non-empty one is refused...
	for _, a := range []teos.Appointment{one, appointment(5, []byte{5})} {
		s.expectError(t, "/add_appointment", addBody(a, alice.signAdd(a)), http.StatusUnauthorized, msgAddUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError)
	}
	// ...but an update that costs nothing more still goes through.
	a := appointment(2, []byte{4})
	sig := alice.signAdd(a)
	s.expectOK(t, "/add_appointment", addBody(a, sig), addReply(s, a.Locator, sig, testHeight, 0, testExpiry))

	// A 1024-byte blob alone fills the body limit.
	big := appointment(6, bytes.Repeat([]byte{1}, 1024))
	if status, _ := s.post(t, "/add_appointment", addBody(big, alice.signAdd(big))); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("1024-byte blob: status %d, want 413", status)
	}
}

func TestAddAppointmentBadSignature(t *testing.T) {
	s := newStack(t)
	alice, mallory := newUser("alice"), newUser("mallory")
	s.register(t, alice)
	a := appointment(1, []byte{1})
	good := alice.signAdd(a)

	raw, err := wtcrypto.DecodeZBase32(good)
	if err != nil {
		t.Fatal(err)
	}
	raw[0] -= 4 // same key, uncompressed flavour: refused
	uncompressed := wtcrypto.EncodeZBase32(raw)

	other := a
	other.ToSelfDelay++
	for name, sig := range map[string]string{
		"unregistered user":       mallory.signAdd(a),
		"other message":           alice.signAdd(other),
		"uncompressed header":     uncompressed,
		"not zbase32":             "not a signature!",
		"short":                   good[:100],
		"get_appointment message": alice.signGet(a.Locator),
	} {
		t.Run(name, func(t *testing.T) {
			s.expectError(t, "/add_appointment", addBody(a, sig), http.StatusUnauthorized, msgAddUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError)
		})
	}
}

func TestAddAppointmentNotEnoughSlots(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)
	s.add(t, alice, appointment(1, []byte{1}))
	s.add(t, alice, appointment(2, []byte{2}))
	a := appointment(3, []byte{3})
	s.expectError(t, "/add_appointment", addBody(a, alice.signAdd(a)), http.StatusUnauthorized, msgAddUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError)

	// Renewing gives the slots back.
	s.register(t, alice)
	sig := alice.signAdd(a)
	s.expectOK(t, "/add_appointment", addBody(a, sig), addReply(s, a.Locator, sig, testHeight, testSlots-1, testExpiry+testDuration))
}

func TestAddAppointmentEmptyBlob(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)
	a := appointment(1, nil)
	sig := alice.signAdd(a)
	body := fmt.Sprintf(`{"appointment":{"locator":"%s","encrypted_blob":"","to_self_delay":42},"signature":"%s"}`, a.Locator, sig)
	s.expectOK(t, "/add_appointment", body, addReply(s, a.Locator, sig, testHeight, testSlots, testExpiry))
	s.expectOK(t, "/get_appointment", getBody(a.Locator, alice.signGet(a.Locator)),
		fmt.Sprintf(`{"appointment":{"locator":"%s","encrypted_blob":"","to_self_delay":42},"status":"being_watched"}`, a.Locator))
}

// PROTOCOL 2.3: zbase32 decoding ignores case, and the receipt signs the text as received.
func TestAddAppointmentUpperCaseSignature(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)
	a := appointment(1, []byte{1})
	lower := alice.signAdd(a)
	upper := strings.ToUpper(lower)
	if upper == lower {
		t.Fatal("signature has no letters")
	}
	s.expectOK(t, "/add_appointment", addBody(a, upper), addReply(s, a.Locator, upper, testHeight, testSlots-1, testExpiry))
	_, body := s.post(t, "/add_appointment", addBody(a, upper))
	receipt := field(t, body, "signature")
	if !wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(upper, testHeight), receipt, s.towerID) {
		t.Fatal("receipt does not cover the upper-case signature")
	}
	if wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(lower, testHeight), receipt, s.towerID) {
		t.Fatal("receipt covers the lower-case signature")
	}
	stored, err := s.store.Appointment(teos.NewUUID(a.Locator, alice.id))
	if err != nil {
		t.Fatal(err)
	}
	if stored.UserSignature != upper {
		t.Fatalf("stored signature %q, want the text as received", stored.UserSignature)
	}
}

// rust-teos checks signature, expiry, trigger, then slots; the first failure is reported.
func TestAddAppointmentAlreadyTriggered(t *testing.T) {
	s := newStack(t)
	alice, bob := newUser("alice"), newUser("bob")
	s.register(t, alice)
	s.register(t, bob)
	a := appointment(1, nil) // costs no slot
	s.add(t, alice, a)
	s.add(t, alice, appointment(2, []byte{2}))
	s.add(t, alice, appointment(3, []byte{3})) // no slot left
	s.putTracker(t, alice, a.Locator, chainhash.Hash{1}, chainhash.Hash{2}, []byte{0xee})

	// {1} would also need a slot Alice lacks: the trigger is reported first.
	for _, blob := range [][]byte{nil, {1}, {1, 2}} {
		b := appointment(1, blob)
		s.expectError(t, "/add_appointment", addBody(b, alice.signAdd(b)), http.StatusBadRequest, msgAlreadyTriggered, teos.ErrCodeAppointmentAlreadyTriggered)
	}
	// Expiry comes before the trigger.
	s.gk.SetHeight(testExpiry)
	s.expectError(t, "/add_appointment", addBody(a, alice.signAdd(a)), http.StatusUnauthorized,
		fmt.Sprintf("Your subscription expired at %d", testExpiry), teos.ErrCodeInvalidSignatureOrSubscriptionError)
	s.gk.SetHeight(testHeight)

	// Another user's appointment for the same locator has its own UUID.
	b := appointment(1, []byte{1})
	sig := bob.signAdd(b)
	s.expectOK(t, "/add_appointment", addBody(b, sig), addReply(s, b.Locator, sig, testHeight, testSlots-1, testExpiry))
}

// Expiry is checked after authentication on the three authenticated endpoints; "expired"
// means height >= expiry.
func TestExpired(t *testing.T) {
	const slots = 1
	s := newStackWith(t, stackConfig{slots: slots, duration: testDuration, height: testHeight})
	alice := newUser("alice")
	s.register(t, alice)
	a := appointment(1, []byte{1})
	s.add(t, alice, a) // no slot left

	s.gk.SetHeight(testExpiry - 1)
	if status, body := s.post(t, "/get_subscription_info", infoBody(alice.signInfo())); status != http.StatusOK {
		t.Fatalf("one block before expiry: %d %s", status, body)
	}

	s.gk.SetHeight(testExpiry)
	msg := fmt.Sprintf("Your subscription expired at %d", testExpiry)
	code := teos.ErrCodeInvalidSignatureOrSubscriptionError
	b := appointment(2, []byte{2})
	s.expectError(t, "/add_appointment", addBody(b, alice.signAdd(b)), http.StatusUnauthorized, msg, code) // before the slot check
	s.expectError(t, "/add_appointment", addBody(a, alice.signAdd(a)), http.StatusUnauthorized, msg, code) // update too
	s.expectError(t, "/get_appointment", getBody(a.Locator, alice.signGet(a.Locator)), http.StatusUnauthorized, msg, code)
	s.expectError(t, "/get_appointment", getBody(b.Locator, alice.signGet(b.Locator)), http.StatusUnauthorized, msg, code) // before not-found
	s.expectError(t, "/get_subscription_info", infoBody(alice.signInfo()), http.StatusUnauthorized, msg, code)

	// An unknown user is told about authentication, not expiry.
	mallory := newUser("mallory")
	s.expectError(t, "/get_subscription_info", infoBody(mallory.signInfo()), http.StatusUnauthorized, msgInfoUnauthorized, code)
	s.expectError(t, "/add_appointment", addBody(b, mallory.signAdd(b)), http.StatusUnauthorized, msgAddUnauthorized, code)

	// Renewal extends from the old expiry and lets the user back in.
	s.register(t, alice)
	s.expectOK(t, "/get_subscription_info", infoBody(alice.signInfo()),
		fmt.Sprintf(`{"available_slots":%d,"subscription_expiry":%d,"locators":["%s"]}`, slots, testExpiry+testDuration, a.Locator))
}

func TestGetAppointment(t *testing.T) {
	s := newStack(t)
	alice, bob, mallory := newUser("alice"), newUser("bob"), newUser("mallory")
	s.register(t, alice)
	s.register(t, bob)
	a := appointment(1, []byte{0x01, 0xab, 0xff})
	s.add(t, alice, a)
	code := teos.ErrCodeInvalidSignatureOrSubscriptionError

	s.expectOK(t, "/get_appointment", getBody(a.Locator, alice.signGet(a.Locator)),
		`{"appointment":{"locator":"`+a.Locator.String()+`","encrypted_blob":"01abff","to_self_delay":42},"status":"being_watched"}`)

	// Bob has no appointment at Alice's locator.
	s.expectError(t, "/get_appointment", getBody(a.Locator, bob.signGet(a.Locator)), http.StatusNotFound, msgNotFound, teos.ErrCodeAppointmentNotFound)
	s.expectError(t, "/get_appointment", getBody(locator(9), alice.signGet(locator(9))), http.StatusNotFound, msgNotFound, teos.ErrCodeAppointmentNotFound)

	// PROTOCOL 2.3: the tower signs the lower-case locator, so signing the upper-case text
	// recovers some other key.
	upperMsg := []byte("get appointment " + strings.ToUpper(a.Locator.String()))
	for name, sig := range map[string]string{
		"unregistered user":     mallory.signGet(a.Locator),
		"upper-case locator":    alice.sign(upperMsg),
		"other locator":         alice.signGet(locator(9)),
		"not zbase32":           "0",
		"add_appointment bytes": alice.signAdd(a),
	} {
		t.Run(name, func(t *testing.T) {
			s.expectError(t, "/get_appointment", getBody(a.Locator, sig), http.StatusUnauthorized, msgGetUnauthorized, code)
		})
	}

	// A triggered appointment shows its tracker, txids in display order.
	var dispute, penalty chainhash.Hash
	for i := range dispute {
		dispute[i] = byte(i)
		penalty[i] = byte(0xa0 + i)
	}
	const (
		disputeDisplay = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
		penaltyDisplay = "bfbebdbcbbbab9b8b7b6b5b4b3b2b1b0afaeadacabaaa9a8a7a6a5a4a3a2a1a0"
	)
	s.putTracker(t, alice, a.Locator, dispute, penalty, []byte{0x02, 0x00, 0xfe})
	s.expectOK(t, "/get_appointment", getBody(a.Locator, alice.signGet(a.Locator)),
		`{"appointment":{"dispute_txid":"`+disputeDisplay+`","penalty_txid":"`+penaltyDisplay+`","penalty_rawtx":"0200fe"},"status":"dispute_responded"}`)
}

func TestGetSubscriptionInfo(t *testing.T) {
	s := newStack(t)
	alice, mallory := newUser("alice"), newUser("mallory")
	s.register(t, alice)
	code := teos.ErrCodeInvalidSignatureOrSubscriptionError

	s.expectOK(t, "/get_subscription_info", infoBody(alice.signInfo()),
		fmt.Sprintf(`{"available_slots":%d,"subscription_expiry":%d,"locators":[]}`, testSlots, testExpiry))

	a := appointment(1, []byte{1})
	s.add(t, alice, a)
	s.expectOK(t, "/get_subscription_info", infoBody(alice.signInfo()),
		fmt.Sprintf(`{"available_slots":%d,"subscription_expiry":%d,"locators":["%s"]}`, testSlots-1, testExpiry, a.Locator))

	// Triggered appointments are listed too; the order is unspecified.
	b := appointment(2, nil)
	s.add(t, alice, b)
	s.putTracker(t, alice, a.Locator, chainhash.Hash{1}, chainhash.Hash{2}, []byte{3})
	status, body := s.post(t, "/get_subscription_info", infoBody(alice.signInfo()))
	prefix := fmt.Sprintf(`{"available_slots":%d,"subscription_expiry":%d,"locators":[`, testSlots-1, testExpiry)
	list, ok := strings.CutPrefix(body, prefix)
	list, ok2 := strings.CutSuffix(list, "]}")
	if status != http.StatusOK || !ok || !ok2 {
		t.Fatalf("got %d %s", status, body)
	}
	got := strings.Split(list, ",")
	want := []string{`"` + a.Locator.String() + `"`, `"` + b.Locator.String() + `"`}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("locators %v, want %v", got, want)
	}

	for name, sig := range map[string]string{
		"unregistered user": mallory.signInfo(),
		"other message":     alice.sign([]byte("get subscription info ")),
		"not zbase32":       "l",
	} {
		t.Run(name, func(t *testing.T) {
			s.expectError(t, "/get_subscription_info", infoBody(sig), http.StatusUnauthorized, msgInfoUnauthorized, code)
		})
	}
}

// TestConcurrentAddsChargeExactly races more adds than the user has slots: bbolt may rerun a
// batched transaction, and the slots taken must still match the appointments stored.
func TestConcurrentAddsChargeExactly(t *testing.T) {
	const slots, attempts = 5, 24
	s := newStackWith(t, stackConfig{slots: slots, duration: testDuration, height: testHeight})
	alice := newUser("alice")
	s.register(t, alice)

	bodies := make([]string, attempts)
	for i := range bodies {
		a := appointment(byte(i), []byte{byte(i)})
		bodies[i] = addBody(a, alice.signAdd(a))
	}
	var accepted, refused atomic.Int32
	var wg sync.WaitGroup
	for _, body := range bodies {
		wg.Go(func() {
			status, got, err := s.do(t.Context(), "/add_appointment", body)
			switch {
			case err != nil:
				t.Error(err)
			case status == http.StatusOK:
				accepted.Add(1)
			case status == http.StatusUnauthorized && got == errorBody(msgAddUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError):
				refused.Add(1)
			default:
				t.Errorf("unexpected reply %d %s", status, got)
			}
		})
	}
	wg.Wait()
	if accepted.Load() != slots || refused.Load() != attempts-slots {
		t.Fatalf("accepted %d, refused %d; want %d and %d", accepted.Load(), refused.Load(), slots, attempts-slots)
	}
	st := s.snapshot(t)
	if len(st.Appointments) != slots || st.Users[alice.id].AvailableSlots != 0 || st.Counts != [3]int{1, slots, 0} {
		t.Fatalf("after the race: %d appointments, %d slots left, counts %v", len(st.Appointments), st.Users[alice.id].AvailableSlots, st.Counts)
	}
}

// TestStateSurvivesReopen mixes accepted and refused requests, then closes everything and
// reopens the file: what was acknowledged is there, what was refused is not.
func TestStateSurvivesReopen(t *testing.T) {
	s := newStack(t)
	alice, bob := newUser("alice"), newUser("bob")
	s.register(t, alice)
	s.add(t, alice, appointment(1, []byte{1}))
	s.add(t, alice, appointment(2, nil))
	s.add(t, alice, appointment(1, nil)) // refund
	s.add(t, alice, appointment(3, []byte{3}))
	a := appointment(4, []byte{4})
	s.add(t, alice, a)
	s.expectError(t, "/add_appointment", addBody(appointment(5, []byte{5}), alice.signAdd(appointment(5, []byte{5}))),
		http.StatusUnauthorized, msgAddUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError)
	s.putTracker(t, alice, a.Locator, chainhash.Hash{7}, chainhash.Hash{8}, []byte{9})
	s.expectError(t, "/add_appointment", addBody(a, alice.signAdd(a)), http.StatusBadRequest, msgAlreadyTriggered, teos.ErrCodeAppointmentAlreadyTriggered)
	s.expectError(t, "/add_appointment", addBody(a, bob.signAdd(a)), http.StatusUnauthorized, msgAddUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError)
	s.reachable.Store(false)
	s.expectError(t, "/register", registerBody(bob.id.String()), http.StatusServiceUnavailable, msgUnavailable, teos.ErrCodeServiceUnavailable)

	want := s.snapshot(t)
	if want.Counts != [3]int{1, 3, 1} || want.Users[alice.id].AvailableSlots != 0 {
		t.Fatalf("before reopen: counts %v, slots %d", want.Counts, want.Users[alice.id].AvailableSlots)
	}
	s.close()
	db, err := store.Open(s.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := snapshotOf(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen:\n got %+v\nwant %+v", got, want)
	}
}
