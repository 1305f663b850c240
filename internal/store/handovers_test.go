package store

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

func upsertWithHandOver(s *Store, a *Appointment, h *HandOver) (UpsertResult, error) {
	res, err := s.UpsertAppointments([]AppointmentUpsert{{Appointment: a, Policy: charge(a), HandOver: func() *HandOver { return h }}})
	if err != nil {
		return UpsertResult{}, err
	}
	return res[0], nil
}

func queued(t *testing.T, s *Store) map[teos.UUID]QueuedHandOver {
	t.Helper()
	list, err := s.QueuedHandOvers()
	if err != nil {
		t.Fatalf("QueuedHandOvers: %v", err)
	}
	m := make(map[teos.UUID]QueuedHandOver, len(list))
	for _, q := range list {
		m[q.UUID] = q
	}
	return m
}

func TestHandOverQueuedWithAppointment(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		user := testUser(1)
		register(t, s, user, 10, 1000)
		blockA, blockB := chainhash.Hash{0xa}, chainhash.Hash{0xb}
		late := testAppointment(user, testLocator(1), 100)
		plain := testAppointment(user, testLocator(2), 100)
		if r, err := upsertWithHandOver(s, late, &HandOver{Block: blockA, Dispute: []byte("dispute")}); err != nil || r.Err != nil {
			t.Fatalf("upsert late: %v, %v", err, r.Err)
		}
		if r, err := upsertWithHandOver(s, plain, nil); err != nil || r.Err != nil {
			t.Fatalf("upsert plain: %v, %v", err, r.Err)
		}
		// A refused upsert queues nothing, even with a hand-over.
		refused := testAppointment(user, testLocator(3), 100*20) // more slots than the user has
		pay := func(u UserInfo, _ *Appointment, _ bool) (UserInfo, error) {
			if u.AvailableSlots < 20 {
				return u, errTriggered
			}
			return u, nil
		}
		res, err := s.UpsertAppointments([]AppointmentUpsert{{Appointment: refused, Policy: pay,
			HandOver: func() *HandOver { return &HandOver{Block: blockB, Dispute: []byte("x")} }}})
		if err != nil || !errors.Is(res[0].Err, errTriggered) {
			t.Fatalf("refused upsert: %v, %v", err, res[0].Err)
		}

		s = reopen()
		q := queued(t, s)
		if len(q) != 1 {
			t.Fatalf("%d queued hand-overs, want 1: %v", len(q), q)
		}
		got, ok := q[late.UUID()]
		if !ok || got.Err != nil || got.Block != blockA || string(got.Dispute) != "dispute" || got.Appointment == nil ||
			!bytes.Equal(got.Appointment.EncryptedBlob, late.EncryptedBlob) {
			t.Fatalf("queued = %+v", got)
		}

		// An update without a hand-over keeps the queued one; with one it replaces it.
		if r, err := upsertWithHandOver(s, late, nil); err != nil || r.Err != nil {
			t.Fatalf("update: %v, %v", err, r.Err)
		}
		if got := queued(t, s)[late.UUID()]; got.Block != blockA {
			t.Fatalf("update without hand-over changed the queue: %+v", got)
		}
		if r, err := upsertWithHandOver(s, late, &HandOver{Block: blockB, Dispute: []byte("d2")}); err != nil || r.Err != nil {
			t.Fatalf("update: %v, %v", err, r.Err)
		}
		if got := queued(t, s)[late.UUID()]; got.Block != blockB || string(got.Dispute) != "d2" {
			t.Fatalf("update with hand-over: %+v", got)
		}

		// Another block's drop leaves it; its own block's drop removes it.
		if n, err := s.DropHandOvers(blockA); err != nil || n != 0 {
			t.Fatalf("DropHandOvers(other block) = %d, %v", n, err)
		}
		if n, err := s.DropHandOvers(blockB); err != nil || n != 1 {
			t.Fatalf("DropHandOvers = %d, %v", n, err)
		}
		s = reopen()
		if q := queued(t, s); len(q) != 0 {
			t.Fatalf("queue after drop: %v", q)
		}
		if _, err := s.Appointment(late.UUID()); err != nil {
			t.Fatalf("dropping a hand-over must keep its appointment: %v", err)
		}
	})
}

func TestHandOverGoesWithItsAppointment(t *testing.T) {
	s := mustOpen(t, t.TempDir()+"/teos.db", nil)
	defer s.Close()
	alice, bob := testUser(1), testUser(2)
	register(t, s, alice, 10, 1000)
	register(t, s, bob, 10, 50)
	a, b := testAppointment(alice, testLocator(1), 100), testAppointment(bob, testLocator(2), 100)
	for _, x := range []*Appointment{a, b} {
		if r, err := upsertWithHandOver(s, x, &HandOver{Block: chainhash.Hash{1}, Dispute: []byte{1}}); err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
	}
	if err := s.DeleteAppointments([]teos.UUID{a.UUID()}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteOutdatedUsers(100, 6); err != nil {
		t.Fatal(err)
	}
	if q := queued(t, s); len(q) != 0 {
		t.Fatalf("hand-overs of deleted appointments still queued: %v", q)
	}
}

func TestQueuedHandOverUnreadable(t *testing.T) {
	s := mustOpen(t, t.TempDir()+"/teos.db", nil)
	defer s.Close()
	user := testUser(1)
	register(t, s, user, 10, 1000)
	good := testAppointment(user, testLocator(1), 100)
	if r, err := upsertWithHandOver(s, good, &HandOver{Dispute: []byte{1}}); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	bad := teos.UUID{0xff}
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktHandOvers).Put(bad[:], []byte{9, 9}) })
	if err != nil {
		t.Fatal(err)
	}
	q := queued(t, s)
	if len(q) != 2 || q[good.UUID()].Err != nil || !errors.Is(q[bad].Err, ErrCorrupt) {
		t.Fatalf("queue = %+v; want the good entry and the bad one with ErrCorrupt", q)
	}
	if err := s.ApplyChanges(&Changes{HandedOver: []teos.UUID{bad}}); err != nil {
		t.Fatal(err)
	}
	if q := queued(t, s); len(q) != 1 {
		t.Fatalf("queue after removing the bad entry: %v", q)
	}
}

func TestApplyChanges(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		user := testUser(1)
		register(t, s, user, 10, 1000)
		var appts []*Appointment
		for i := range 5 {
			a := testAppointment(user, testLocator(i), 100)
			if r, err := upsertWithHandOver(s, a, &HandOver{Dispute: []byte{byte(i)}}); err != nil || r.Err != nil {
				t.Fatal(err, r.Err)
			}
			appts = append(appts, a)
		}
		if got := mustUser(t, s, user).AvailableSlots; got != 5 {
			t.Fatalf("slots = %d", got)
		}
		tr := func(i int, h uint32) *Tracker {
			return &Tracker{UUID: appts[i].UUID(), DisputeTx: []byte{1}, PenaltyTx: []byte{2}, Height: h}
		}
		gone := &Tracker{UUID: teos.UUID{0xee}, Height: 1} // no such appointment: skipped
		before := commits(t, s)
		err := s.ApplyChanges(&Changes{
			Trackers:   []*Tracker{tr(0, 7), tr(1, 7), tr(2, 7), gone},
			Completed:  []teos.UUID{appts[1].UUID()},
			Dropped:    []teos.UUID{appts[2].UUID(), appts[3].UUID()},
			HandedOver: []teos.UUID{appts[0].UUID(), appts[1].UUID()},
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := commits(t, s) - before; n != 1 {
			t.Fatalf("%d commits, want 1", n)
		}
		if err := s.ApplyChanges(&Changes{}); err != nil || commits(t, s)-before != 1 {
			t.Fatalf("empty changes: %v, %d commits", err, commits(t, s)-before)
		}
		s = reopen()
		if got, err := s.Tracker(appts[0].UUID()); err != nil || got.Height != 7 {
			t.Fatalf("tracker 0: %+v, %v", got, err)
		}
		for _, i := range []int{1, 2, 3} {
			if _, err := s.Appointment(appts[i].UUID()); !errors.Is(err, ErrNotFound) {
				t.Errorf("appointment %d: %v, want deleted", i, err)
			}
			if _, err := s.Tracker(appts[i].UUID()); !errors.Is(err, ErrNotFound) {
				t.Errorf("tracker %d: %v, want deleted", i, err)
			}
		}
		if _, err := s.Tracker(gone.UUID); !errors.Is(err, ErrNotFound) {
			t.Errorf("tracker without appointment stored: %v", err)
		}
		if got := mustUser(t, s, user).AvailableSlots; got != 6 {
			t.Errorf("slots = %d, want 6 (one completion refunded)", got)
		}
		q := queued(t, s)
		if len(q) != 1 || q[appts[4].UUID()].Appointment == nil {
			t.Errorf("queue = %v, want only appointment 4's", q)
		}
		wantCounts(t, s, 1, 1, 1)
	})
}

func TestWaitWrites(t *testing.T) {
	s := mustOpen(t, t.TempDir()+"/teos.db", nil)
	defer s.Close()
	before := commits(t, s)
	if err := s.WaitWrites(); err != nil {
		t.Fatal(err)
	}
	if n := commits(t, s) - before; n != 0 {
		t.Fatalf("WaitWrites committed %d transactions", n)
	}
}

func FuzzHandOverCodec(f *testing.F) {
	f.Add(encodeHandOver(&HandOver{Block: chainhash.Hash{1}, Dispute: []byte("dispute")}), []byte("tx"))
	f.Add([]byte{handOverRecordV1}, []byte(nil))
	f.Fuzz(func(t *testing.T, raw, dispute []byte) {
		if h, err := decodeHandOver(raw); err == nil {
			if re := encodeHandOver(&h); !bytes.Equal(re, raw) {
				t.Fatalf("accepted %x but re-encodes to %x", raw, re)
			}
		}
		want := HandOver{Dispute: dispute}
		copy(want.Block[:], raw)
		got, err := decodeHandOver(encodeHandOver(&want))
		if err != nil || got.Block != want.Block || !bytes.Equal(got.Dispute, want.Dispute) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", want, got, err)
		}
	})
}

func TestQueuedHandOversFromWrapsRound(t *testing.T) {
	s := mustOpen(t, t.TempDir()+"/teos.db", nil)
	defer s.Close()
	user := testUser(1)
	register(t, s, user, 100, 1000)
	var ids []teos.UUID
	for i := range 5 {
		a := testAppointment(user, testLocator(i), 100)
		if r, err := upsertWithHandOver(s, a, &HandOver{Dispute: []byte{byte(i)}}); err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
		ids = append(ids, a.UUID())
	}
	slices.SortFunc(ids, func(x, y teos.UUID) int { return bytes.Compare(x[:], y[:]) })
	uuids := func(list []QueuedHandOver) []teos.UUID {
		var out []teos.UUID
		for _, q := range list {
			out = append(out, q.UUID)
		}
		return out
	}
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
		got, err := s.QueuedHandOversFrom(tc.from, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(uuids(got), tc.want) {
			t.Errorf("QueuedHandOversFrom(%s, %d) = %v, want %v", tc.from, tc.limit, uuids(got), tc.want)
		}
	}
}
