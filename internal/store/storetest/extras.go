package storetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// The checks of the registration allowlist, the stored-bytes measure and the lnd front end's
// records.

func testAllowlist(t *testing.T, d *db) {
	a, b := user(2), user(1)
	if ok, err := d.UserAllowed(a); err != nil || ok {
		t.Fatalf("UserAllowed on an empty list = %v, %v", ok, err)
	}
	if ids, err := d.AllowedUsers(); err != nil || len(ids) != 0 {
		t.Fatalf("AllowedUsers on an empty list = %v, %v", ids, err)
	}
	for _, x := range []struct {
		id   teos.UserID
		want bool
	}{{a, true}, {a, false}, {b, true}} {
		if changed, err := d.AllowUser(x.id); err != nil || changed != x.want {
			t.Fatalf("AllowUser(%s) = %v, %v; want changed %v", x.id, changed, err, x.want)
		}
	}
	d.reopen()
	if ids, err := d.AllowedUsers(); err != nil || !slices.Equal(ids, []teos.UserID{b, a}) {
		t.Fatalf("AllowedUsers = %v, %v; want [%s %s] in key order", ids, err, b, a)
	}
	if ok, err := d.UserAllowed(a); err != nil || !ok {
		t.Fatalf("UserAllowed(added) = %v, %v", ok, err)
	}
	if ok, err := d.UserAllowed(user(3)); err != nil || ok {
		t.Fatalf("UserAllowed(other) = %v, %v", ok, err)
	}
	// Removing leaves the user's subscription alone.
	register(t, d, a, 10, 1000)
	for _, want := range []bool{true, false} {
		if changed, err := d.DisallowUser(a); err != nil || changed != want {
			t.Fatalf("DisallowUser = %v, %v; want changed %v", changed, err, want)
		}
	}
	d.reopen()
	if ok, err := d.UserAllowed(a); err != nil || ok {
		t.Fatalf("UserAllowed(removed) = %v, %v", ok, err)
	}
	if ids, err := d.AllowedUsers(); err != nil || !slices.Equal(ids, []teos.UserID{b}) {
		t.Fatalf("AllowedUsers after removal = %v, %v", ids, err)
	}
	userInfo(t, d, a)
}

// testStoredBytes: the measure grows by at least half of what is stored (random blobs, so no
// engine compresses them away).
func testStoredBytes(t *testing.T, d *db) {
	before, err := d.StoredBytes()
	if err != nil || before < 0 {
		t.Fatalf("StoredBytes = %d, %v", before, err)
	}
	u := user(1)
	register(t, d, u, 1_000_000, 1000)
	rng := rand.New(rand.NewPCG(1, 2))
	const n, size = 600, 1000
	items := make([]store.AppointmentUpsert, n)
	for i := range items {
		a := appt(u, locator(i), 0)
		a.EncryptedBlob = make([]byte, size)
		for j := range a.EncryptedBlob {
			a.EncryptedBlob[j] = byte(rng.Uint32())
		}
		items[i] = store.AppointmentUpsert{Appointment: a, Policy: pay(a)}
	}
	res, err := d.UpsertAppointments(items)
	if err != nil {
		t.Fatalf("UpsertAppointments: %v", err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
	}
	d.reopen()
	after, err := d.StoredBytes()
	if err != nil || after-before < n*size/2 {
		t.Fatalf("StoredBytes %d -> %d (%v) after storing %d bytes", before, after, err, n*size)
	}
}

func lndID(i int) store.LndSessionID {
	var id store.LndSessionID
	id[0] = 0x03
	binary.BigEndian.PutUint64(id[1:], uint64(i))
	return id
}

func lndHint(i int) store.LndHint {
	var h store.LndHint
	binary.BigEndian.PutUint64(h[:], uint64(i)*0x9e3779b97f4a7c15)
	binary.BigEndian.PutUint64(h[8:], uint64(i))
	return h
}

func lndCounts(t *testing.T, d *db, sessions, updates int) {
	t.Helper()
	s, u, err := d.LndCounts()
	if err != nil || s != sessions || u != updates {
		t.Fatalf("LndCounts = %d, %d, %v; want %d, %d", s, u, err, sessions, updates)
	}
}

func lndSession(t *testing.T, d *db, id store.LndSessionID, want string) {
	t.Helper()
	rec, ok, err := d.LndSession(id)
	if want == "" {
		if err != nil || ok {
			t.Fatalf("LndSession(%x) = %q, %v, %v; want none", id, rec, ok, err)
		}
		return
	}
	if err != nil || !ok || string(rec) != want {
		t.Fatalf("LndSession(%x) = %q, %v, %v; want %q", id, rec, ok, err, want)
	}
}

// addLnd stores an update whose session record becomes sess.
func addLnd(t *testing.T, d *db, id store.LndSessionID, hint store.LndHint, sess, upd string) {
	t.Helper()
	err := d.LndAddUpdate(id, hint, func(prev []byte) ([]byte, []byte, error) {
		if prev == nil {
			return nil, nil, errNoSession
		}
		return []byte(sess), []byte(upd), nil
	})
	if err != nil {
		t.Fatalf("LndAddUpdate(%x): %v", id, err)
	}
}

var errNoSession = errors.New("no such session")

func testLndSessions(t *testing.T, d *db) {
	s1, s2 := lndID(1), lndID(2)
	h1, h2, h3 := lndHint(1), lndHint(2), lndHint(3)
	lndSession(t, d, s1, "")
	lndCounts(t, d, 0, 0)
	if m, err := d.LndMatches([]store.LndHint{h1}); err != nil || len(m) != 0 {
		t.Fatalf("LndMatches on an empty store = %v, %v", m, err)
	}

	// A new session: check sees none.
	var seen [][]byte
	check := func(prev []byte) error { seen = append(seen, prev); return nil }
	if err := d.LndPutSession(s1, []byte("s1-v0"), check); err != nil {
		t.Fatalf("LndPutSession: %v", err)
	}
	if len(seen) != 1 || seen[0] != nil {
		t.Fatalf("check saw %q, want one nil", seen)
	}
	// A replacement: check sees the stored record; a refusal is returned as is, storing nothing.
	refused := errors.New("refused")
	err := d.LndPutSession(s1, []byte("s1-other"), func(prev []byte) error {
		if string(prev) != "s1-v0" {
			return fmt.Errorf("check saw %q", prev)
		}
		return refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("refused LndPutSession = %v", err)
	}
	lndSession(t, d, s1, "s1-v0")
	if err := d.LndPutSession(s2, []byte("s2-v0"), nil); err != nil {
		t.Fatalf("LndPutSession: %v", err)
	}

	// Updates: fn sees the session's record; a refusal (or a missing session) stores nothing.
	addLnd(t, d, s1, h1, "s1-v1", "u1-h1")
	err = d.LndAddUpdate(s1, h2, func(prev []byte) ([]byte, []byte, error) {
		if string(prev) != "s1-v1" {
			return nil, nil, fmt.Errorf("fn saw %q", prev)
		}
		return []byte("s1-bad"), []byte("bad"), refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("refused LndAddUpdate = %v", err)
	}
	if err := d.LndAddUpdate(lndID(9), h1, func(prev []byte) ([]byte, []byte, error) {
		if prev != nil {
			return nil, nil, fmt.Errorf("fn saw %q for an unknown session", prev)
		}
		return nil, nil, errNoSession
	}); !errors.Is(err, errNoSession) {
		t.Fatalf("LndAddUpdate of an unknown session = %v", err)
	}
	lndSession(t, d, s1, "s1-v1")
	lndSession(t, d, lndID(9), "")
	lndCounts(t, d, 2, 1)

	addLnd(t, d, s1, h2, "s1-v2", "u1-h2")
	addLnd(t, d, s2, h1, "s2-v1", "u2-h1")
	addLnd(t, d, s2, h3, "s2-v2", "u2-h3-old")
	addLnd(t, d, s2, h3, "s2-v3", "u2-h3") // same key: replaces
	lndCounts(t, d, 2, 4)
	d.reopen()

	type m struct{ sess, hint, srec, urec string }
	matches := func(hints ...store.LndHint) []m {
		t.Helper()
		got, err := d.LndMatches(hints)
		if err != nil {
			t.Fatalf("LndMatches: %v", err)
		}
		var out []m
		for _, x := range got {
			out = append(out, m{fmt.Sprintf("%x", x.Session[:]), fmt.Sprintf("%x", x.Hint[:]), string(x.SessionRecord), string(x.UpdateRecord)})
		}
		return out
	}
	hx := func(b []byte) string { return fmt.Sprintf("%x", b) }
	// In the hints' order, then by session id; a hint with no update gives nothing.
	want := []m{
		{hx(s2[:]), hx(h3[:]), "s2-v3", "u2-h3"},
		{hx(s1[:]), hx(h1[:]), "s1-v2", "u1-h1"},
		{hx(s2[:]), hx(h1[:]), "s2-v3", "u2-h1"},
	}
	if got := matches(h3, lndHint(7), h1); !slices.Equal(got, want) {
		t.Fatalf("LndMatches = %+v\nwant %+v", got, want)
	}

	// Deleting a session deletes its updates, and only its.
	if found, err := d.LndDeleteSession(s2); err != nil || !found {
		t.Fatalf("LndDeleteSession = %v, %v", found, err)
	}
	if found, err := d.LndDeleteSession(s2); err != nil || found {
		t.Fatalf("LndDeleteSession again = %v, %v", found, err)
	}
	d.reopen()
	lndSession(t, d, s2, "")
	lndCounts(t, d, 1, 2)
	want = []m{{hx(s1[:]), hx(h1[:]), "s1-v2", "u1-h1"}, {hx(s1[:]), hx(h2[:]), "s1-v2", "u1-h2"}}
	if got := matches(h1, h2, h3); !slices.Equal(got, want) {
		t.Fatalf("LndMatches after delete = %+v\nwant %+v", got, want)
	}
	// Nothing of the tower's own records changed.
	counts(t, d, 0, 0, 0)
}

// testLndConcurrentUpdates: updates of one session are serialised: each fn sees the record the
// previous one stored (a counter that loses no increment).
func testLndConcurrentUpdates(t *testing.T, d *db) {
	id := lndID(1)
	if err := d.LndPutSession(id, binary.BigEndian.AppendUint32(nil, 0), nil); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- d.LndAddUpdate(id, lndHint(i), func(prev []byte) ([]byte, []byte, error) {
				if len(prev) != 4 {
					return nil, nil, fmt.Errorf("session record %x", prev)
				}
				return binary.BigEndian.AppendUint32(nil, binary.BigEndian.Uint32(prev)+1), []byte{byte(i)}, nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rec, _, err := d.LndSession(id)
	if err != nil || len(rec) != 4 || binary.BigEndian.Uint32(rec) != n {
		t.Fatalf("session counter = %x, %v; want %d", rec, err, n)
	}
	lndCounts(t, d, 1, n)

	// Racing first updates of a new session, all with one hint: one session, one update.
	other := lndID(2)
	errs = make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- d.LndAddUpdate(other, lndHint(0), func([]byte) ([]byte, []byte, error) {
				return []byte("s"), []byte("u"), nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	lndCounts(t, d, 2, n+1)
}

// testLndCountsFollowWrites: LndCounts agrees with a model of the records after every write
// of a random sequence (new, replaced and refused sessions and updates, sessions made by an
// update, deletions of present and absent sessions) and after reopening.
func testLndCountsFollowWrites(t *testing.T, d *db) {
	const nSessions, nHints, steps = 6, 5, 300
	rng := rand.New(rand.NewPCG(3, 4))
	model := map[store.LndSessionID]map[store.LndHint]bool{}
	refused := errors.New("refused")
	for step := range steps {
		id, hint := lndID(rng.IntN(nSessions)), lndHint(rng.IntN(nHints))
		refuse := rng.IntN(6) == 0
		var op string
		var err error
		switch rng.IntN(10) {
		case 0, 1:
			op = "put session"
			err = d.LndPutSession(id, []byte("s"), func([]byte) error {
				if refuse {
					return refused
				}
				return nil
			})
			if err == nil && model[id] == nil {
				model[id] = map[store.LndHint]bool{}
			}
		case 2, 3, 4, 5, 6:
			// An update of an unknown session makes the session (as the interface allows).
			op = "add update"
			err = d.LndAddUpdate(id, hint, func([]byte) ([]byte, []byte, error) {
				if refuse {
					return []byte("bad"), []byte("bad"), refused
				}
				return []byte("s"), []byte("u"), nil
			})
			if err == nil {
				if model[id] == nil {
					model[id] = map[store.LndHint]bool{}
				}
				model[id][hint] = true
			}
		case 7, 8:
			op = "delete session"
			var found bool
			found, err = d.LndDeleteSession(id)
			if err == nil && found != (model[id] != nil) {
				t.Fatalf("step %d: LndDeleteSession found = %v, model has it: %v", step, found, model[id] != nil)
			}
			delete(model, id)
		default:
			op = "reopen"
			d.reopen()
		}
		if err != nil && !errors.Is(err, refused) {
			t.Fatalf("step %d (%s): %v", step, op, err)
		}
		updates := 0
		for _, hs := range model {
			updates += len(hs)
		}
		s, u, err := d.LndCounts()
		if err != nil || s != len(model) || u != updates {
			t.Fatalf("step %d (%s): LndCounts = %d, %d, %v; want %d, %d", step, op, s, u, err, len(model), updates)
		}
	}
	d.reopen()
	if s, _, err := d.LndCounts(); err != nil || s != len(model) {
		t.Fatalf("after reopen: LndCounts = %d, %v; want %d sessions", s, err, len(model))
	}
}

func sameTracker(t *testing.T, got, want *store.Tracker) {
	t.Helper()
	if got == nil || got.UUID != want.UUID || !bytes.Equal(got.DisputeTx, want.DisputeTx) || !bytes.Equal(got.PenaltyTx, want.PenaltyTx) ||
		got.DisputeTxID != want.DisputeTxID || got.PenaltyTxID != want.PenaltyTxID || got.Height != want.Height || got.Confirmed != want.Confirmed {
		t.Fatalf("tracker = %+v, want %+v", got, want)
	}
}

// testLndTrackers: the front end's trackers need no appointment and are apart from the
// tower's.
func testLndTrackers(t *testing.T, d *db) {
	ids := []teos.UUID{{3}, {1}, {2}, {4}}
	if _, err := d.LndTracker(ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LndTracker of nothing = %v", err)
	}
	if err := d.LndPutTracker(tracker(ids[0], 5, false)); err != nil {
		t.Fatal(err)
	}
	if err := d.LndPutTracker(tracker(ids[0], 6, true)); err != nil { // replaces
		t.Fatal(err)
	}
	err := d.LndApplyChanges(&store.Changes{Trackers: []*store.Tracker{tracker(ids[1], 7, false), tracker(ids[2], 8, false), tracker(ids[3], 9, false)}})
	if err != nil {
		t.Fatal(err)
	}
	d.reopen()
	got, err := d.LndTracker(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	sameTracker(t, got, tracker(ids[0], 6, true))
	if trs, err := d.Trackers(); err != nil || len(trs) != 0 {
		t.Fatalf("the tower's Trackers = %v, %v; want none", trs, err)
	}
	counts(t, d, 0, 0, 0)
	// One transaction: stored, completed and dropped.
	err = d.LndApplyChanges(&store.Changes{
		Trackers: []*store.Tracker{tracker(ids[1], 10, true)}, Completed: []teos.UUID{ids[2]}, Dropped: []teos.UUID{ids[3], {9}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.LndDeleteTrackers([]teos.UUID{ids[0], {8}}); err != nil {
		t.Fatal(err)
	}
	d.reopen()
	trs, err := d.LndTrackers()
	if err != nil || len(trs) != 1 {
		t.Fatalf("LndTrackers = %v, %v; want one", trs, err)
	}
	sameTracker(t, trs[0], tracker(ids[1], 10, true))
	if err := d.LndPutTracker(tracker(ids[0], 1, false)); err != nil {
		t.Fatal(err)
	}
	if trs, err = d.LndTrackers(); err != nil || len(trs) != 2 || trs[0].UUID != ids[1] || trs[1].UUID != ids[0] {
		t.Fatalf("LndTrackers not in UUID order: %v, %v", trs, err)
	}
	// No appointment behind a front end's tracker: untracking deletes it, alone.
	if err := d.LndApplyChanges(&store.Changes{Untracked: []teos.UUID{ids[0]}}); err != nil {
		t.Fatal(err)
	}
	d.reopen()
	if trs, err = d.LndTrackers(); err != nil || len(trs) != 1 || trs[0].UUID != ids[1] {
		t.Fatalf("LndTrackers after untrack = %v, %v; want %s only", trs, err, ids[1])
	}
	// A rejected re-send (Invalid) deletes it too, alone in its Changes.
	if err := d.LndApplyChanges(&store.Changes{Invalid: []teos.UUID{ids[1]}}); err != nil {
		t.Fatal(err)
	}
	d.reopen()
	if trs, err = d.LndTrackers(); err != nil || len(trs) != 0 {
		t.Fatalf("LndTrackers after an Invalid = %v, %v; want none", trs, err)
	}
}

// testLndApplyChangesLeavesClientRecords: a block's commit (LndApplyChanges, every kind of
// change, and LndDeleteTrackers) writes trackers only, never an lnd client's sessions or state
// updates, even for trackers whose ids share bytes with them. That is why the front end needs
// no Changes.Basis: nothing a client was answered for can be deleted by a block that read
// the store before the client's request. Basis is ignored, the same on both engines.
func testLndApplyChangesLeavesClientRecords(t *testing.T, d *db) {
	s1, s2 := lndID(1), lndID(2)
	h1, h2 := lndHint(1), lndHint(2)
	addLndSession := func(id store.LndSessionID, rec string) {
		t.Helper()
		if err := d.LndPutSession(id, []byte(rec), nil); err != nil {
			t.Fatal(err)
		}
	}
	addLndSession(s1, "s1-v0")
	addLndSession(s2, "s2-v0")
	addLnd(t, d, s1, h1, "s1-v1", "u1-h1")
	addLnd(t, d, s1, h2, "s1-v2", "u1-h2")
	addLnd(t, d, s2, h1, "s2-v1", "u2-h1")
	// Tracker ids made of a session id's and a hint's bytes, and others.
	var fromSession, fromHint teos.UUID
	copy(fromSession[:], s1[:])
	copy(fromHint[:], h1[:])
	ids := []teos.UUID{fromSession, fromHint, {1}, {2}, {3}, {4}, {5}}
	for i, id := range ids[:6] {
		if err := d.LndPutTracker(tracker(id, uint32(10+i), false)); err != nil {
			t.Fatal(err)
		}
	}
	basis := map[teos.UUID]store.Basis{}
	for _, id := range ids {
		basis[id] = store.Basis{Tracked: true, UserSignature: "not an lnd record"}
	}
	err := d.LndApplyChanges(&store.Changes{
		Trackers:  []*store.Tracker{tracker(ids[6], 30, false), tracker(ids[5], 31, true)},
		Completed: []teos.UUID{fromSession}, Dropped: []teos.UUID{fromHint}, Invalid: []teos.UUID{ids[2]},
		Untracked: []teos.UUID{ids[3]}, HandedOver: []teos.UUID{ids[4]}, Basis: basis,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.LndDeleteTrackers([]teos.UUID{ids[4]}); err != nil {
		t.Fatal(err)
	}
	d.reopen()
	lndCounts(t, d, 2, 3)
	lndSession(t, d, s1, "s1-v2")
	lndSession(t, d, s2, "s2-v1")
	got, err := d.LndMatches([]store.LndHint{h1, h2})
	if err != nil || len(got) != 3 {
		t.Fatalf("LndMatches = %v, %v; want the 3 updates", got, err)
	}
	for _, m := range got {
		want := map[store.LndSessionID]string{s1: "s1-v2", s2: "s2-v1"}[m.Session]
		if string(m.SessionRecord) != want || len(m.UpdateRecord) == 0 {
			t.Fatalf("LndMatches gave %x/%x with session %q, update %q", m.Session, m.Hint, m.SessionRecord, m.UpdateRecord)
		}
	}
	// The trackers: those deleted are gone, the stored ones stored despite a Basis naming
	// a tracker (ids[6]) that was not there.
	trs, err := d.LndTrackers()
	if err != nil || len(trs) != 2 {
		t.Fatalf("LndTrackers = %v, %v; want 2", trs, err)
	}
	byID := map[teos.UUID]*store.Tracker{trs[0].UUID: trs[0], trs[1].UUID: trs[1]}
	if byID[ids[5]] == nil || byID[ids[6]] == nil {
		t.Fatalf("LndTrackers = %v; want %s and %s", trs, ids[5], ids[6])
	}
	sameTracker(t, byID[ids[5]], tracker(ids[5], 31, true))
	sameTracker(t, byID[ids[6]], tracker(ids[6], 30, false))
}
