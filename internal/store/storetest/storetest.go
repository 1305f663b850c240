// Package storetest is the store contract's conformance suite: Run pins the behaviour every
// engine (bbolt, PostgreSQL) must share, so the core can use either unchanged.
package storetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// NewDB creates a fresh, empty database and returns a function that opens it; the suite
// closes what it opens, and may open the database again after closing it to check
// durability.
type NewDB func(t *testing.T) (open func() store.Engine)

// Run runs every conformance check against the engine newDB makes.
func Run(t *testing.T, newDB NewDB) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, db *db)
	}{
		{"TowerKeys", testTowerKeys},
		{"LastBlock", testLastBlock},
		{"Users", testUsers},
		{"Upsert", testUpsert},
		{"UpsertRefusalWritesNothing", testUpsertRefusal},
		{"UpsertBatch", testUpsertBatch},
		{"Locators", testLocators},
		{"Trackers", testTrackers},
		{"DeleteAppointments", testDeleteAppointments},
		{"DeleteOutdatedUsers", testDeleteOutdatedUsers},
		{"ApplyChanges", testApplyChanges},
		{"ApplyChangesSkipsStaleBasis", testApplyChangesStaleBasis},
		{"ApplyChangesUntracked", testApplyChangesUntracked},
		{"HandOvers", testHandOvers},
		{"HandOversWrapRound", testHandOversWrapRound},
		{"ForEachAppointment", testForEach},
		{"ConcurrentUpserts", testConcurrent},
		{"BulkLoad", testBulkLoad},
		{"NilInputsAreErrors", testNilInputs},
		// extras.go
		{"Allowlist", testAllowlist},
		{"StoredBytes", testStoredBytes},
		{"LndSessions", testLndSessions},
		{"LndConcurrentUpdates", testLndConcurrentUpdates},
		{"LndCountsFollowWrites", testLndCountsFollowWrites},
		{"LndTrackers", testLndTrackers},
		{"LndApplyChangesLeavesClientRecords", testLndApplyChangesLeavesClientRecords},
	} {
		t.Run(c.name, func(t *testing.T) {
			open := newDB(t)
			d := &db{t: t, open: open, Engine: open()}
			t.Cleanup(func() { _ = d.Close() })
			c.fn(t, d)
		})
	}
}

// db is the engine under test; reopen closes it and opens it again, so what a check reads
// after reopen was durable.
type db struct {
	store.Engine
	t    *testing.T
	open func() store.Engine
}

func (d *db) reopen() {
	d.t.Helper()
	if err := d.Close(); err != nil {
		d.t.Fatalf("Close: %v", err)
	}
	d.Engine = d.open()
}

func user(i int) teos.UserID {
	var u teos.UserID
	u[0] = 0x02
	binary.BigEndian.PutUint64(u[1:], uint64(i))
	return u
}

func locator(i int) teos.Locator {
	var l teos.Locator
	binary.BigEndian.PutUint64(l[:], uint64(i)*0x9e3779b97f4a7c15)
	binary.BigEndian.PutUint64(l[8:], uint64(i))
	return l
}

func appt(u teos.UserID, loc teos.Locator, blobLen int) *store.Appointment {
	return &store.Appointment{
		Appointment:   teos.Appointment{Locator: loc, EncryptedBlob: bytes.Repeat([]byte{byte(blobLen)}, blobLen), ToSelfDelay: 42},
		UserID:        u,
		UserSignature: "d" + loc.String(),
		StartBlock:    100,
	}
}

func register(t *testing.T, s store.Engine, id teos.UserID, slots, expiry uint32) {
	t.Helper()
	_, err := s.UpdateUser(id, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: slots, SubscriptionStart: 1, SubscriptionExpiry: expiry}, nil
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

var errRefused = errors.New("refused by policy")

// pay charges the appointment's slots, refusing when the user has too few.
func pay(a *store.Appointment) store.AppointmentPolicy {
	return func(u store.UserInfo, prev *store.Appointment, _ bool) (store.UserInfo, error) {
		need := teos.Slots(len(a.EncryptedBlob))
		if prev != nil {
			need -= min(need, teos.Slots(len(prev.EncryptedBlob)))
		}
		if u.AvailableSlots < need {
			return u, errRefused
		}
		u.AvailableSlots -= need
		return u, nil
	}
}

func add(t *testing.T, s store.Engine, a *store.Appointment) store.UserInfo {
	t.Helper()
	u, err := s.UpsertAppointment(a, pay(a))
	if err != nil {
		t.Fatalf("upsert %s: %v", a.UUID(), err)
	}
	return u
}

func sameAppt(t *testing.T, got, want *store.Appointment) {
	t.Helper()
	if got == nil || got.Locator != want.Locator || !bytes.Equal(got.EncryptedBlob, want.EncryptedBlob) ||
		got.ToSelfDelay != want.ToSelfDelay || got.UserID != want.UserID || got.UserSignature != want.UserSignature ||
		got.StartBlock != want.StartBlock {
		t.Fatalf("appointment = %+v, want %+v", got, want)
	}
}

func userInfo(t *testing.T, s store.Engine, id teos.UserID) store.UserInfo {
	t.Helper()
	u, ok, err := s.User(id)
	if err != nil || !ok {
		t.Fatalf("User(%s) = %v, %v", id, ok, err)
	}
	return u
}

func counts(t *testing.T, s store.Engine, users, watched, trackers int) {
	t.Helper()
	u, w, tr, err := s.Counts()
	if err != nil || u != users || w != watched || tr != trackers {
		t.Fatalf("Counts = %d, %d, %d, %v; want %d, %d, %d", u, w, tr, err, users, watched, trackers)
	}
}

func tracker(id teos.UUID, height uint32, confirmed bool) *store.Tracker {
	return &store.Tracker{UUID: id, DisputeTx: []byte("dispute-" + id.String()), PenaltyTx: []byte("penalty"),
		DisputeTxID: chainhash.Hash{1, byte(height)}, PenaltyTxID: chainhash.Hash{2, byte(height)}, Height: height, Confirmed: confirmed}
}

func sortedUUIDs(ids []teos.UUID) []teos.UUID {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(x, y teos.UUID) int { return bytes.Compare(x[:], y[:]) })
	return ids
}

func testTowerKeys(t *testing.T, d *db) {
	if _, ok, err := d.TowerKey(); err != nil || ok {
		t.Fatalf("TowerKey on a new database = %v, %v", ok, err)
	}
	k1, k2 := [32]byte{1}, [32]byte{2}
	for _, k := range [][32]byte{k1, k2} {
		if err := d.AddTowerKey(k); err != nil {
			t.Fatal(err)
		}
	}
	d.reopen()
	if sk, ok, err := d.TowerKey(); err != nil || !ok || sk != k2 {
		t.Fatalf("TowerKey = %x, %v, %v; want the newest", sk, ok, err)
	}
	if keys, err := d.TowerKeys(); err != nil || !slices.Equal(keys, [][32]byte{k1, k2}) {
		t.Fatalf("TowerKeys = %x, %v", keys, err)
	}
}

func testLastBlock(t *testing.T, d *db) {
	if _, _, ok, err := d.LastBlock(); err != nil || ok {
		t.Fatalf("LastBlock on a new database = %v, %v", ok, err)
	}
	h := chainhash.Hash{7, 7}
	if err := d.SetLastBlock(chainhash.Hash{1}, 10); err != nil {
		t.Fatal(err)
	}
	if err := d.SetLastBlock(h, 11); err != nil {
		t.Fatal(err)
	}
	d.reopen()
	if got, height, ok, err := d.LastBlock(); err != nil || !ok || got != h || height != 11 {
		t.Fatalf("LastBlock = %s, %d, %v, %v", got, height, ok, err)
	}
}

func testUsers(t *testing.T, d *db) {
	alice, bob := user(1), user(2)
	if _, ok, err := d.User(alice); err != nil || ok {
		t.Fatalf("User(unknown) = %v, %v", ok, err)
	}
	register(t, d, bob, 5, 200)
	register(t, d, alice, 10, 100)
	// A refusal is returned unchanged and writes nothing.
	_, err := d.UpdateUser(alice, func(prev store.UserInfo, exists bool) (store.UserInfo, error) {
		if !exists || prev.AvailableSlots != 10 {
			t.Errorf("UpdateUser saw %+v, %v", prev, exists)
		}
		return store.UserInfo{AvailableSlots: 99}, errRefused
	})
	if !errors.Is(err, errRefused) {
		t.Fatalf("refused UpdateUser = %v", err)
	}
	got, err := d.UpdateUser(alice, func(prev store.UserInfo, _ bool) (store.UserInfo, error) {
		prev.AvailableSlots += 5
		prev.SubscriptionExpiry = 300
		return prev, nil
	})
	if err != nil || got.AvailableSlots != 15 {
		t.Fatalf("UpdateUser = %+v, %v", got, err)
	}
	d.reopen()
	if u := userInfo(t, d, alice); u != (store.UserInfo{AvailableSlots: 15, SubscriptionStart: 1, SubscriptionExpiry: 300}) {
		t.Fatalf("alice = %+v", u)
	}
	ids, err := d.Users()
	if err != nil || len(ids) != 2 || !slices.Contains(ids, alice) || !slices.Contains(ids, bob) {
		t.Fatalf("Users = %v, %v", ids, err)
	}
	counts(t, d, 2, 0, 0)
}

func testUpsert(t *testing.T, d *db) {
	alice := user(1)
	a := appt(alice, locator(1), 100)
	if _, err := d.UpsertAppointment(a, pay(a)); !errors.Is(err, store.ErrUserNotFound) {
		t.Fatalf("upsert for an unknown user = %v, want ErrUserNotFound", err)
	}
	register(t, d, alice, 10, 1000)
	var sawPrev []*store.Appointment
	policy := func(u store.UserInfo, prev *store.Appointment, triggered bool) (store.UserInfo, error) {
		sawPrev = append(sawPrev, prev)
		if triggered {
			t.Error("triggered without a tracker")
		}
		return pay(a)(u, prev, triggered)
	}
	if u, err := d.UpsertAppointment(a, policy); err != nil || u.AvailableSlots != 9 {
		t.Fatalf("first upsert = %+v, %v", u, err)
	}
	// The same UUID again: the policy sees the stored one.
	a2 := appt(alice, locator(1), 3000)
	policy2 := func(u store.UserInfo, prev *store.Appointment, triggered bool) (store.UserInfo, error) {
		sawPrev = append(sawPrev, prev)
		return pay(a2)(u, prev, triggered)
	}
	if u, err := d.UpsertAppointment(a2, policy2); err != nil || u.AvailableSlots != 8 {
		t.Fatalf("update = %+v, %v", u, err)
	}
	if sawPrev[0] != nil || sawPrev[len(sawPrev)-1] == nil || len(sawPrev[len(sawPrev)-1].EncryptedBlob) != 100 {
		t.Fatalf("policy saw prev = %v", sawPrev)
	}
	d.reopen()
	got, err := d.Appointment(a.UUID())
	if err != nil {
		t.Fatal(err)
	}
	sameAppt(t, got, a2)
	if _, err := d.Appointment(teos.UUID{9}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Appointment(unknown) = %v", err)
	}
	if _, err := d.Tracker(a.UUID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Tracker(none) = %v", err)
	}
	if u := userInfo(t, d, alice); u.AvailableSlots != 8 {
		t.Fatalf("slots = %d", u.AvailableSlots)
	}
	counts(t, d, 1, 1, 0)
}

func testUpsertRefusal(t *testing.T, d *db) {
	alice := user(1)
	register(t, d, alice, 1, 1000)
	big := appt(alice, locator(1), 3000) // 2 slots
	if _, err := d.UpsertAppointment(big, pay(big)); !errors.Is(err, errRefused) {
		t.Fatalf("upsert over the slots = %v", err)
	}
	d.reopen()
	if _, err := d.Appointment(big.UUID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused appointment stored: %v", err)
	}
	if ids, err := d.UserAppointments(alice); err != nil || len(ids) != 0 {
		t.Fatalf("UserAppointments = %v, %v", ids, err)
	}
	if m, err := d.AppointmentsByLocators([]teos.Locator{big.Locator}); err != nil || len(m) != 0 {
		t.Fatalf("locator index after refusal = %v, %v", m, err)
	}
	if u := userInfo(t, d, alice); u.AvailableSlots != 1 {
		t.Fatalf("slots after refusal = %d", u.AvailableSlots)
	}
	counts(t, d, 1, 0, 0)
}

func testUpsertBatch(t *testing.T, d *db) {
	alice, bob := user(1), user(2)
	register(t, d, alice, 2, 1000)
	a1, a2, a3 := appt(alice, locator(1), 100), appt(alice, locator(2), 100), appt(alice, locator(3), 100)
	ghost := appt(bob, locator(4), 100) // bob is not registered
	res, err := d.UpsertAppointments([]store.AppointmentUpsert{
		{Appointment: a1, Policy: pay(a1)},
		{Appointment: ghost, Policy: pay(ghost)},
		{Appointment: a2, Policy: pay(a2), HandOver: func() *store.HandOver { return &store.HandOver{Block: chainhash.Hash{5}, Dispute: []byte("d")} }},
		{Appointment: a3, Policy: pay(a3)}, // no slot left: each item sees the ones before
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].User.AvailableSlots != 1 || res[2].Err != nil || res[2].User.AvailableSlots != 0 {
		t.Fatalf("accepted items = %+v, %+v", res[0], res[2])
	}
	if !errors.Is(res[1].Err, store.ErrUserNotFound) || !errors.Is(res[3].Err, errRefused) {
		t.Fatalf("refused items = %v, %v", res[1].Err, res[3].Err)
	}
	// Every item refused: nothing written, no error.
	res, err = d.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a3, Policy: pay(a3)}})
	if err != nil || !errors.Is(res[0].Err, errRefused) {
		t.Fatalf("all refused = %v, %v", res, err)
	}
	if _, err := d.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a3}}); err == nil {
		t.Fatal("an item without a policy must be an error")
	}
	d.reopen()
	ids, err := d.UserAppointments(alice)
	if err != nil || !slices.Equal(sortedUUIDs(ids), sortedUUIDs([]teos.UUID{a1.UUID(), a2.UUID()})) {
		t.Fatalf("UserAppointments = %v, %v", ids, err)
	}
	q, err := d.QueuedHandOvers()
	if err != nil || len(q) != 1 || q[0].UUID != a2.UUID() || q[0].Err != nil || string(q[0].Dispute) != "d" {
		t.Fatalf("queue = %+v, %v", q, err)
	}
	sameAppt(t, q[0].Appointment, a2)
	counts(t, d, 1, 2, 0)
}

func testLocators(t *testing.T, d *db) {
	alice, bob := user(1), user(2)
	register(t, d, alice, 10, 1000)
	register(t, d, bob, 10, 1000)
	shared := locator(1)
	aa, ba, a2 := appt(alice, shared, 100), appt(bob, shared, 200), appt(alice, locator(2), 100)
	for _, a := range []*store.Appointment{aa, ba, a2} {
		add(t, d, a)
	}
	d.reopen()
	got, err := d.AppointmentsByLocator(shared)
	if err != nil || len(got) != 2 {
		t.Fatalf("AppointmentsByLocator = %v, %v", got, err)
	}
	if u0, u1 := got[0].UUID(), got[1].UUID(); bytes.Compare(u0[:], u1[:]) > 0 {
		t.Fatal("AppointmentsByLocator not ordered by UUID")
	}
	m, err := d.AppointmentsByLocators([]teos.Locator{locator(3), shared, locator(2), shared})
	if err != nil || len(m) != 2 || len(m[shared]) != 2 || len(m[locator(2)]) != 1 {
		t.Fatalf("AppointmentsByLocators = %v, %v", m, err)
	}
	sameAppt(t, m[locator(2)][0], a2)
	if m, err := d.AppointmentsByLocators(nil); err != nil || len(m) != 0 {
		t.Fatalf("AppointmentsByLocators(nil) = %v, %v", m, err)
	}
	locs, err := d.UserLocators(alice)
	if err != nil || len(locs) != 2 || !slices.Contains(locs, shared) || !slices.Contains(locs, locator(2)) {
		t.Fatalf("UserLocators = %v, %v", locs, err)
	}
}

func testTrackers(t *testing.T, d *db) {
	alice := user(1)
	register(t, d, alice, 10, 1000)
	a, b := appt(alice, locator(1), 100), appt(alice, locator(2), 100)
	add(t, d, a)
	add(t, d, b)
	if err := d.PutTracker(tracker(teos.UUID{9}, 5, false)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tracker without appointment = %v", err)
	}
	if err := d.PutTracker(tracker(a.UUID(), 5, false)); err != nil {
		t.Fatal(err)
	}
	want := tracker(a.UUID(), 7, true)
	if err := d.PutTracker(want); err != nil { // replaces
		t.Fatal(err)
	}
	d.reopen()
	got, err := d.Tracker(a.UUID())
	if err != nil || got.UUID != want.UUID || !bytes.Equal(got.DisputeTx, want.DisputeTx) || !bytes.Equal(got.PenaltyTx, want.PenaltyTx) ||
		got.DisputeTxID != want.DisputeTxID || got.PenaltyTxID != want.PenaltyTxID || got.Height != 7 || !got.Confirmed {
		t.Fatalf("Tracker = %+v, %v", got, err)
	}
	all, err := d.Trackers()
	if err != nil || len(all) != 1 || all[0].UUID != a.UUID() {
		t.Fatalf("Trackers = %v, %v", all, err)
	}
	counts(t, d, 1, 1, 1)
	// The policy sees the tracker.
	var triggered bool
	_, err = d.UpsertAppointment(a, func(u store.UserInfo, _ *store.Appointment, tr bool) (store.UserInfo, error) {
		triggered = tr
		return u, errRefused
	})
	if !errors.Is(err, errRefused) || !triggered {
		t.Fatalf("upsert of a triggered appointment: triggered=%v, %v", triggered, err)
	}
}

func testDeleteAppointments(t *testing.T, d *db) {
	alice := user(1)
	register(t, d, alice, 10, 1000)
	a, b, c := appt(alice, locator(1), 100), appt(alice, locator(2), 3000), appt(alice, locator(3), 100)
	for _, x := range []*store.Appointment{a, b, c} {
		add(t, d, x)
	}
	if err := d.PutTracker(tracker(b.UUID(), 5, false)); err != nil {
		t.Fatal(err)
	}
	// slots: 10 - 1 - 2 - 1 = 6
	if err := d.DeleteAppointments([]teos.UUID{b.UUID(), {9}}, true); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteAppointments([]teos.UUID{c.UUID()}, false); err != nil {
		t.Fatal(err)
	}
	d.reopen()
	if u := userInfo(t, d, alice); u.AvailableSlots != 8 {
		t.Fatalf("slots after refund = %d, want 8", u.AvailableSlots)
	}
	for _, x := range []*store.Appointment{b, c} {
		if _, err := d.Appointment(x.UUID()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted appointment still there: %v", err)
		}
		if got, err := d.AppointmentsByLocator(x.Locator); err != nil || len(got) != 0 {
			t.Fatalf("locator index keeps a deleted appointment: %v, %v", got, err)
		}
	}
	if _, err := d.Tracker(b.UUID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tracker of a deleted appointment: %v", err)
	}
	if ids, err := d.UserAppointments(alice); err != nil || !slices.Equal(ids, []teos.UUID{a.UUID()}) {
		t.Fatalf("UserAppointments = %v, %v", ids, err)
	}
	counts(t, d, 1, 1, 0)
	// A refund saturates.
	register(t, d, alice, ^uint32(0), 1000)
	if err := d.DeleteAppointments([]teos.UUID{a.UUID()}, true); err != nil {
		t.Fatal(err)
	}
	if u := userInfo(t, d, alice); u.AvailableSlots != ^uint32(0) {
		t.Fatalf("saturated refund = %d", u.AvailableSlots)
	}
}

func testDeleteOutdatedUsers(t *testing.T, d *db) {
	alice, bob, carol := user(1), user(2), user(3)
	register(t, d, alice, 10, 100)
	register(t, d, bob, 10, 100)
	register(t, d, carol, 10, 150)
	// bob renews: the expiry index follows.
	register(t, d, bob, 10, 200)
	aa, ca := appt(alice, locator(1), 100), appt(carol, locator(2), 100)
	add(t, d, aa)
	add(t, d, ca)
	res, err := d.UpsertAppointments([]store.AppointmentUpsert{{Appointment: aa, Policy: pay(aa),
		HandOver: func() *store.HandOver { return &store.HandOver{Block: chainhash.Hash{1}, Dispute: []byte("x")} }}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	if err := d.PutTracker(tracker(aa.UUID(), 5, false)); err != nil {
		t.Fatal(err)
	}
	if got, err := d.DeleteOutdatedUsers(109, 10); err != nil || len(got) != 0 {
		t.Fatalf("DeleteOutdatedUsers before expiry+delta = %v, %v", got, err)
	}
	got, err := d.DeleteOutdatedUsers(110, 10)
	if err != nil || !slices.Equal(got, []teos.UserID{alice}) {
		t.Fatalf("DeleteOutdatedUsers = %v, %v; want alice only", got, err)
	}
	d.reopen()
	if _, ok, err := d.User(alice); err != nil || ok {
		t.Fatalf("outdated user kept: %v, %v", ok, err)
	}
	if _, err := d.Appointment(aa.UUID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("outdated user's appointment kept: %v", err)
	}
	if tr, err := d.Trackers(); err != nil || len(tr) != 0 {
		t.Fatalf("outdated user's tracker kept: %v, %v", tr, err)
	}
	if q, err := d.QueuedHandOvers(); err != nil || len(q) != 0 {
		t.Fatalf("outdated user's hand-over kept: %v, %v", q, err)
	}
	if m, err := d.AppointmentsByLocators([]teos.Locator{aa.Locator}); err != nil || len(m) != 0 {
		t.Fatalf("outdated user's locator kept: %v, %v", m, err)
	}
	counts(t, d, 2, 1, 0)
	got, err = d.DeleteOutdatedUsers(1000, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("DeleteOutdatedUsers(all) = %v, %v", got, err)
	}
	counts(t, d, 0, 0, 0)
}

func testApplyChanges(t *testing.T, d *db) {
	alice := user(1)
	register(t, d, alice, 10, 1000)
	var as []*store.Appointment
	for i := range 5 {
		a := appt(alice, locator(i), 100)
		as = append(as, a)
		res, err := d.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: pay(a),
			HandOver: func() *store.HandOver { return &store.HandOver{Block: chainhash.Hash{1}, Dispute: []byte("x")} }}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
	}
	if err := d.ApplyChanges(&store.Changes{}); err != nil {
		t.Fatal(err)
	}
	err := d.ApplyChanges(&store.Changes{
		Trackers:   []*store.Tracker{tracker(as[0].UUID(), 5, false), tracker(teos.UUID{9}, 5, false), tracker(as[1].UUID(), 5, false)},
		Completed:  []teos.UUID{as[1].UUID()},
		Dropped:    []teos.UUID{as[2].UUID()},
		Invalid:    []teos.UUID{as[4].UUID()},
		HandedOver: []teos.UUID{as[0].UUID(), as[3].UUID()},
	})
	if err != nil {
		t.Fatal(err)
	}
	d.reopen()
	if tr, err := d.Trackers(); err != nil || len(tr) != 1 || tr[0].UUID != as[0].UUID() {
		t.Fatalf("Trackers = %v, %v", tr, err)
	}
	if u := userInfo(t, d, alice); u.AvailableSlots != 7 { // 10 - 5 + 1 completed + 1 invalid, refunded
		t.Fatalf("slots = %d, want 7", u.AvailableSlots)
	}
	if q, err := d.QueuedHandOvers(); err != nil || len(q) != 0 {
		t.Fatalf("queue = %v, %v", q, err)
	}
	counts(t, d, 1, 1, 1)
}

// A decision made on an appointment that was replaced (or deleted and added again) before the
// commit must not touch the new version or the hand-over it queued; one still current applies.
func testApplyChangesStaleBasis(t *testing.T, d *db) {
	alice := user(1)
	register(t, d, alice, 100, 1000)
	queue := func() *store.HandOver { return &store.HandOver{Block: chainhash.Hash{1}, Dispute: []byte("x")} }
	upsert := func(a *store.Appointment) {
		t.Helper()
		res, err := d.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: pay(a), HandOver: queue}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
	}
	var old []*store.Appointment
	for i := range 6 {
		a := appt(alice, locator(i), 100)
		old = append(old, a)
		upsert(a)
	}
	// a0 and a1 are updated after the decisions about them were made: new blob, new signature.
	for _, a := range old[:2] {
		n := *a
		n.EncryptedBlob, n.UserSignature = []byte("new blob"), "new-"+a.UserSignature
		upsert(&n)
	}
	id := func(i int) teos.UUID { return old[i].UUID() }
	seen := func(i int) store.Basis { return store.Basis{UserSignature: old[i].UserSignature} }
	if err := d.PutTracker(tracker(id(5), 3, true)); err != nil {
		t.Fatal(err)
	}
	err := d.ApplyChanges(&store.Changes{
		Trackers:   []*store.Tracker{tracker(id(1), 5, false), tracker(id(3), 5, false)},
		Completed:  []teos.UUID{id(4), id(5)},
		Dropped:    []teos.UUID{id(0), id(2)},
		HandedOver: []teos.UUID{id(1), id(3)},
		Basis: map[teos.UUID]store.Basis{
			id(0): seen(0), id(1): seen(1), // stale: updated
			id(2): seen(2), id(3): seen(3), // current
			id(4): {Tracked: true}, // stale: no tracker
			id(5): {Tracked: true}, // current
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d.reopen()
	for i, want := range []string{"new-" + old[0].UserSignature, "new-" + old[1].UserSignature, "", old[3].UserSignature, old[4].UserSignature, ""} {
		a, err := d.Appointment(id(i))
		switch {
		case want == "" && !errors.Is(err, store.ErrNotFound):
			t.Errorf("a%d: %v, %v; want deleted", i, a, err)
		case want != "" && (err != nil || a.UserSignature != want):
			t.Errorf("a%d: %v, %v; want signature %q", i, a, err, want)
		}
	}
	if tr, err := d.Trackers(); err != nil || len(tr) != 1 || tr[0].UUID != id(3) {
		t.Fatalf("Trackers = %v, %v; want only a3's", tr, err)
	}
	q, err := d.QueuedHandOvers()
	if err != nil {
		t.Fatal(err)
	}
	var queued []teos.UUID
	for _, h := range q {
		queued = append(queued, h.UUID)
	}
	if want := sortedUUIDs([]teos.UUID{id(0), id(1), id(4)}); !slices.Equal(queued, want) {
		t.Fatalf("queued %v, want %v (the updates' hand-overs and a4's)", queued, want)
	}
	if u := userInfo(t, d, alice); u.AvailableSlots != 100-6+1 { // a5 completed: refunded
		t.Fatalf("slots = %d, want %d", u.AvailableSlots, 100-6+1)
	}
}

func testHandOvers(t *testing.T, d *db) {
	alice := user(1)
	register(t, d, alice, 10, 1000)
	blockA, blockB := chainhash.Hash{0xa}, chainhash.Hash{0xb}
	late := appt(alice, locator(1), 100)
	queue := func(h *store.HandOver) {
		t.Helper()
		res, err := d.UpsertAppointments([]store.AppointmentUpsert{{Appointment: late, Policy: pay(late),
			HandOver: func() *store.HandOver { return h }}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
	}
	queue(&store.HandOver{Block: blockA, Dispute: []byte("one")})
	queue(nil) // keeps the queued one
	if q, err := d.QueuedHandOvers(); err != nil || len(q) != 1 || q[0].Block != blockA {
		t.Fatalf("queue = %+v, %v", q, err)
	}
	queue(&store.HandOver{Block: blockB, Dispute: []byte("two")}) // replaces
	if err := d.WaitWrites(); err != nil {
		t.Fatal(err)
	}
	d.reopen()
	if q, err := d.QueuedHandOvers(); err != nil || len(q) != 1 || q[0].Block != blockB || string(q[0].Dispute) != "two" {
		t.Fatalf("queue = %+v, %v", q, err)
	}
	if n, err := d.DropHandOvers(blockA); err != nil || n != 0 {
		t.Fatalf("DropHandOvers(other) = %d, %v", n, err)
	}
	if n, err := d.DropHandOvers(blockB); err != nil || n != 1 {
		t.Fatalf("DropHandOvers = %d, %v", n, err)
	}
	d.reopen()
	if q, err := d.QueuedHandOvers(); err != nil || len(q) != 0 {
		t.Fatalf("queue after drop = %v, %v", q, err)
	}
	if _, err := d.Appointment(late.UUID()); err != nil {
		t.Fatalf("dropping a hand-over must keep its appointment: %v", err)
	}
}

func testHandOversWrapRound(t *testing.T, d *db) {
	alice := user(1)
	register(t, d, alice, 100, 1000)
	var ids []teos.UUID
	for i := range 5 {
		a := appt(alice, locator(i), 100)
		res, err := d.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: pay(a),
			HandOver: func() *store.HandOver { return &store.HandOver{Dispute: []byte{byte(i)}} }}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
		ids = append(ids, a.UUID())
	}
	ids = sortedUUIDs(ids)
	for _, tc := range []struct {
		from  teos.UUID
		limit int
		want  []teos.UUID
	}{
		{teos.UUID{}, 0, ids},
		{teos.UUID{}, 2, ids[:2]},
		{ids[3], 0, append(slices.Clone(ids[3:]), ids[:3]...)},
		{ids[3], 3, []teos.UUID{ids[3], ids[4], ids[0]}},
		{ids[4], 1, ids[4:]},
	} {
		got, err := d.QueuedHandOversFrom(tc.from, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var uuids []teos.UUID
		for _, q := range got {
			uuids = append(uuids, q.UUID)
		}
		if !slices.Equal(uuids, tc.want) {
			t.Errorf("QueuedHandOversFrom(%s, %d) = %v, want %v", tc.from, tc.limit, uuids, tc.want)
		}
	}
}

func testForEach(t *testing.T, d *db) {
	alice, bob := user(1), user(2)
	register(t, d, alice, 10, 1000)
	register(t, d, bob, 10, 1000)
	a, b, c := appt(alice, locator(1), 100), appt(bob, locator(1), 100), appt(alice, locator(2), 100)
	for _, x := range []*store.Appointment{a, b, c} {
		add(t, d, x)
	}
	if err := d.PutTracker(tracker(b.UUID(), 5, false)); err != nil {
		t.Fatal(err)
	}
	seen := map[teos.UUID]bool{}
	err := d.ForEachAppointment(nil, func(x *store.Appointment, tr *store.Tracker) error {
		seen[x.UUID()] = tr != nil
		return nil
	})
	if err != nil || len(seen) != 3 || !seen[b.UUID()] || seen[a.UUID()] {
		t.Fatalf("ForEachAppointment(all) = %v, %v", seen, err)
	}
	loc := locator(1)
	n := 0
	if err := d.ForEachAppointment(&loc, func(x *store.Appointment, _ *store.Tracker) error {
		if x.Locator != loc {
			t.Errorf("locator %s", x.Locator)
		}
		n++
		return nil
	}); err != nil || n != 2 {
		t.Fatalf("ForEachAppointment(loc) = %d, %v", n, err)
	}
	stop := errors.New("stop")
	if err := d.ForEachAppointment(nil, func(*store.Appointment, *store.Tracker) error { return stop }); err != stop {
		t.Fatalf("fn's error = %v, want it unchanged", err)
	}
}

func testConcurrent(t *testing.T, d *db) {
	const n = 40
	alice := user(1)
	register(t, d, alice, n-5, 1000) // five adds must be refused
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			a := appt(alice, locator(i), 100)
			_, errs[i] = d.UpsertAppointment(a, pay(a))
		})
	}
	wg.Wait()
	refused := 0
	for _, err := range errs {
		if errors.Is(err, errRefused) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	d.reopen()
	ids, err := d.UserAppointments(alice)
	if err != nil || refused != 5 || len(ids) != n-5 {
		t.Fatalf("%d refused, %d stored (%v); want 5, %d", refused, len(ids), err, n-5)
	}
	if u := userInfo(t, d, alice); u.AvailableSlots != 0 {
		t.Fatalf("slots = %d", u.AvailableSlots)
	}
	counts(t, d, 1, n-5, 0)
}

func testBulkLoad(t *testing.T, d *db) {
	alice, bob := user(1), user(2)
	ghost := appt(bob, locator(9), 100)
	err := d.BulkLoad(map[teos.UserID]store.UserInfo{alice: {AvailableSlots: 3, SubscriptionExpiry: 100}},
		[]*store.Appointment{appt(alice, locator(1), 100), ghost})
	if !errors.Is(err, store.ErrUserNotFound) {
		t.Fatalf("BulkLoad with an unknown owner = %v", err)
	}
	if ids, err := d.Users(); err != nil || len(ids) != 0 {
		t.Fatalf("failed BulkLoad wrote users: %v, %v", ids, err)
	}
	var appts []*store.Appointment
	for i := range 50 {
		appts = append(appts, appt(alice, locator(i), 100))
	}
	if err := d.BulkLoad(map[teos.UserID]store.UserInfo{alice: {AvailableSlots: 3, SubscriptionExpiry: 100}}, appts); err != nil {
		t.Fatal(err)
	}
	d.reopen()
	if u := userInfo(t, d, alice); u.AvailableSlots != 3 {
		t.Fatalf("BulkLoad charged slots: %+v", u)
	}
	m, err := d.AppointmentsByLocators([]teos.Locator{locator(0), locator(49)})
	if err != nil || len(m) != 2 {
		t.Fatalf("AppointmentsByLocators after BulkLoad = %v, %v", m, err)
	}
	counts(t, d, 1, 50, 0)
	if got, err := d.DeleteOutdatedUsers(100, 0); err != nil || len(got) != 1 {
		t.Fatalf("bulk-loaded user not in the expiry index: %v, %v", got, err)
	}
}

// An untracked appointment loses its tracker and nothing else: it is found by its locator,
// answered as untriggered, slots and indexes unchanged, as before it was triggered.
func testApplyChangesUntracked(t *testing.T, d *db) {
	alice := user(1)
	register(t, d, alice, 10, 1000)
	a, b := appt(alice, locator(1), 100), appt(alice, locator(2), 100)
	add(t, d, a)
	add(t, d, b)
	err := d.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{tracker(a.UUID(), 5, false), tracker(b.UUID(), 5, true)}})
	if err != nil {
		t.Fatal(err)
	}
	counts(t, d, 1, 0, 2)
	// A UUID without a tracker, or without an appointment, is skipped.
	err = d.ApplyChanges(&store.Changes{Untracked: []teos.UUID{a.UUID(), teos.UUID{9}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ApplyChanges(&store.Changes{Untracked: []teos.UUID{a.UUID()}}); err != nil {
		t.Fatalf("untrack again: %v", err)
	}
	d.reopen()
	if tr, err := d.Trackers(); err != nil || len(tr) != 1 || tr[0].UUID != b.UUID() {
		t.Fatalf("Trackers = %v, %v", tr, err)
	}
	if _, err := d.Tracker(a.UUID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Tracker(untracked) err = %v, want ErrNotFound", err)
	}
	got, err := d.Appointment(a.UUID())
	if err != nil {
		t.Fatalf("untracked appointment: %v", err)
	}
	sameAppt(t, got, a)
	found, err := d.AppointmentsByLocators([]teos.Locator{a.Locator})
	if err != nil || len(found[a.Locator]) != 1 || found[a.Locator][0].UUID() != a.UUID() {
		t.Fatalf("AppointmentsByLocators = %v, %v", found, err)
	}
	if u := userInfo(t, d, alice); u.AvailableSlots != 8 {
		t.Fatalf("slots = %d, want 8 (untracking charges and refunds nothing)", u.AvailableSlots)
	}
	counts(t, d, 1, 1, 1)
	// An update now sees it untriggered, as any watched appointment.
	var triggered bool
	_, err = d.UpsertAppointment(a, func(u store.UserInfo, _ *store.Appointment, tr bool) (store.UserInfo, error) {
		triggered = tr
		return u, nil
	})
	if err != nil || triggered {
		t.Fatalf("upsert after untrack: triggered %v, err %v", triggered, err)
	}
	// Stored and untracked in one commit: the tracker ends up deleted.
	err = d.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{tracker(b.UUID(), 6, true)}, Untracked: []teos.UUID{b.UUID()}})
	if err != nil {
		t.Fatal(err)
	}
	d.reopen()
	if tr, err := d.Trackers(); err != nil || len(tr) != 0 {
		t.Fatalf("Trackers = %v, %v", tr, err)
	}
	counts(t, d, 1, 2, 0)
}

// A missing appointment, tracker or callback is an error of the call, never a panic (which
// in the group commit's goroutine would stop the daemon), and nothing is written.
func testNilInputs(t *testing.T, d *db) {
	alice := user(1)
	register(t, d, alice, 10, 1000)
	a := appt(alice, locator(1), 100)
	checks := []struct {
		name string
		call func() error
	}{
		{"UpsertAppointment(nil, policy)", func() error { _, err := d.UpsertAppointment(nil, pay(a)); return err }},
		{"UpsertAppointment(a, nil)", func() error { _, err := d.UpsertAppointment(a, nil); return err }},
		{"UpsertAppointments(nil policy)", func() error {
			_, err := d.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: pay(a)}, {Appointment: a}})
			return err
		}},
		{"UpdateUser(id, nil)", func() error { _, err := d.UpdateUser(user(2), nil); return err }},
		{"PutTracker(nil)", func() error { return d.PutTracker(nil) }},
		{"ApplyChanges(nil tracker)", func() error { return d.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{nil}}) }},
		{"BulkLoad(nil appointment)", func() error {
			return d.BulkLoad(map[teos.UserID]store.UserInfo{user(3): {AvailableSlots: 1}}, []*store.Appointment{a, nil})
		}},
		{"LndAddUpdate(nil)", func() error { return d.LndAddUpdate(store.LndSessionID{1}, store.LndHint{1}, nil) }},
		{"LndPutTracker(nil)", func() error { return d.LndPutTracker(nil) }},
		{"LndApplyChanges(nil tracker)", func() error { return d.LndApplyChanges(&store.Changes{Trackers: []*store.Tracker{nil}}) }},
	}
	for _, c := range checks {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s panicked: %v", c.name, r)
				}
			}()
			if err := c.call(); err == nil {
				t.Errorf("%s succeeded", c.name)
			}
		}()
	}
	counts(t, d, 1, 0, 0)
	if u := userInfo(t, d, alice); u.AvailableSlots != 10 {
		t.Fatalf("slots = %d after refused calls", u.AvailableSlots)
	}
	if n, m, err := d.LndCounts(); err != nil || n != 0 || m != 0 {
		t.Fatalf("LndCounts = %d, %d, %v", n, m, err)
	}
}
