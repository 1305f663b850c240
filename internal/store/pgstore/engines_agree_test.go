package pgstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

func dUser(i int) teos.UserID {
	var u teos.UserID
	u[0] = 0x02
	binary.BigEndian.PutUint64(u[1:], uint64(i))
	return u
}
func dLoc(i int) teos.Locator {
	var l teos.Locator
	binary.BigEndian.PutUint64(l[:], uint64(i)*0x9e3779b97f4a7c15)
	binary.BigEndian.PutUint64(l[8:], uint64(i))
	return l
}

func snapshot(e store.Engine) string {
	var b bytes.Buffer
	users, err := e.Users()
	fmt.Fprintf(&b, "users %v\n", err)
	slices.SortFunc(users, func(x, y teos.UserID) int { return bytes.Compare(x[:], y[:]) })
	for _, u := range users {
		ui, ok, err := e.User(u)
		ids, err2 := e.UserAppointments(u)
		locs, err3 := e.UserLocators(u)
		fmt.Fprintf(&b, " %x %+v %v %v %v %v %d %v\n", u[1:9], ui, ok, err, ids, err2, len(locs), err3)
	}
	var all []string
	err = e.ForEachAppointment(nil, func(a *store.Appointment, t *store.Tracker) error {
		s := fmt.Sprintf(" %s %x %d %q %d %x", a.UUID(), a.EncryptedBlob, a.ToSelfDelay, a.UserSignature, a.StartBlock, a.UserID[1:9])
		if t != nil {
			s += fmt.Sprintf(" T %x %x %v %v %d %v", t.DisputeTx, t.PenaltyTx, t.DisputeTxID, t.PenaltyTxID, t.Height, t.Confirmed)
		}
		all = append(all, s)
		return nil
	})
	slices.Sort(all)
	fmt.Fprintf(&b, "appts %v\n%v\n", err, all)
	tr, err := e.Trackers()
	fmt.Fprintf(&b, "trackers %d %v\n", len(tr), err)
	u, w, t, err := e.Counts()
	fmt.Fprintf(&b, "counts %d %d %d %v\n", u, w, t, err)
	q, err := e.QueuedHandOvers()
	fmt.Fprintf(&b, "queue %v\n", err)
	for _, h := range q {
		fmt.Fprintf(&b, " %s %v %x %v\n", h.UUID, h.Block, h.Dispute, h.Err)
	}
	return b.String()
}

func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, store.ErrUserNotFound):
		return "usernotfound"
	case errors.Is(err, store.ErrNotFound):
		return "notfound"
	case errors.Is(err, errPolicy):
		return "policy"
	}
	return "other:" + err.Error()
}

var errPolicy = errors.New("policy")

// The two engines, given the same random sequence of operations (users, upserts with
// refusals and hand-overs, deletions, changes with and without a Basis, expiry, trackers,
// hand-over queue, lookups, bulk loads, lnd records), answer every call alike and hold the
// same records, counts and queue after each: what storetest's cases do not pin one by one.
func TestEnginesAgreeOnRandomOperations(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	for seed := uint64(1); seed <= 8; seed++ {
		pg := open(t, srv.NewDatabase(t), "regtest")
		bb, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		engines := []store.Engine{bb, pg}
		r := rand.New(rand.NewPCG(seed, 7))
		for step := 0; step < 150; step++ {
			op := r.IntN(16)
			var outs []string
			// pre-generate random parameters
			nu, nl := 4, 12
			uidx := r.IntN(nu)
			slots := uint32(r.IntN(8))
			expiry := uint32(r.IntN(30))
			refund := r.IntN(2) == 0
			height := uint32(r.IntN(40))
			delta := uint32(r.IntN(10))
			var ids []teos.UUID
			for range r.IntN(4) {
				ids = append(ids, teos.NewUUID(dLoc(r.IntN(nl)), dUser(r.IntN(nu))))
			}
			type itemSpec struct {
				u, l, blob int
				ho         bool
				sig        int
			}
			var items []itemSpec
			for range 1 + r.IntN(5) {
				items = append(items, itemSpec{r.IntN(nu), r.IntN(nl), 1 + r.IntN(3*teos.EncryptedBlobMaxSize), r.IntN(3) == 0, r.IntN(2)})
			}
			var ch store.Changes
			for range r.IntN(3) {
				id := teos.NewUUID(dLoc(r.IntN(nl)), dUser(r.IntN(nu)))
				ch.Trackers = append(ch.Trackers, &store.Tracker{UUID: id, DisputeTx: []byte{1, byte(step)}, PenaltyTx: []byte{2}, Height: uint32(step), Confirmed: r.IntN(2) == 0})
			}
			pick := func() []teos.UUID {
				var out []teos.UUID
				for range r.IntN(3) {
					out = append(out, teos.NewUUID(dLoc(r.IntN(nl)), dUser(r.IntN(nu))))
				}
				return out
			}
			ch.Completed, ch.Dropped, ch.Invalid, ch.HandedOver, ch.Untracked = pick(), pick(), pick(), pick(), pick()
			if r.IntN(2) == 0 {
				ch.Basis = map[teos.UUID]store.Basis{}
				for _, id := range pick() {
					ch.Basis[id] = store.Basis{UserSignature: []string{"", "s0", "s1"}[r.IntN(3)], Tracked: r.IntN(2) == 0}
				}
			}
			lsid := store.LndSessionID{2, byte(r.IntN(4))}
			lhint := store.LndHint{byte(r.IntN(5))}
			lrec := []byte{byte(r.IntN(3)) + 1}
			lfail := r.IntN(4) == 0
			from := teos.NewUUID(dLoc(r.IntN(nl)), dUser(r.IntN(nu)))
			limit := r.IntN(4)
			var locs []teos.Locator
			for range r.IntN(5) {
				locs = append(locs, dLoc(r.IntN(nl+2)))
			}
			bulkUsers := map[teos.UserID]store.UserInfo{}
			for range r.IntN(2) {
				bulkUsers[dUser(r.IntN(nu+1))] = store.UserInfo{AvailableSlots: uint32(r.IntN(9)), SubscriptionStart: 1, SubscriptionExpiry: uint32(r.IntN(30))}
			}
			var bulk []*store.Appointment
			inBulk := map[teos.UUID]bool{} // which of two copies of a UUID wins is not specified
			for range r.IntN(3) {
				bl := 1 + r.IntN(700)
				a := &store.Appointment{Appointment: teos.Appointment{Locator: dLoc(r.IntN(nl)), EncryptedBlob: bytes.Repeat([]byte{7}, bl), ToSelfDelay: 1},
					UserID: dUser(r.IntN(nu + 1)), UserSignature: "b", StartBlock: 3}
				if !inBulk[a.UUID()] {
					inBulk[a.UUID()] = true
					bulk = append(bulk, a)
				}
			}
			for _, e := range engines {
				var out string
				switch op {
				case 9:
					err := e.LndPutSession(lsid, lrec, func(prev []byte) error {
						if lfail {
							return errPolicy
						}
						return nil
					})
					out = "lndput " + errClass(err)
				case 10:
					err := e.LndAddUpdate(lsid, lhint, func(prev []byte) ([]byte, []byte, error) {
						if lfail {
							return nil, nil, errPolicy
						}
						return append(append([]byte{}, prev...), 1), lrec, nil
					})
					out = "lndadd " + errClass(err)
				case 11:
					found, err := e.LndDeleteSession(lsid)
					out = fmt.Sprintf("lnddel %v %s", found, errClass(err))
				case 12:
					m, err := e.LndMatches([]store.LndHint{lhint, {0}, lhint})
					a, b, err2 := e.LndCounts()
					out = fmt.Sprintf("lndm %s %d %d %s", errClass(err), a, b, errClass(err2))
					for _, x := range m {
						out += fmt.Sprintf(" %x %x %x %x", x.Hint, x.Session, x.SessionRecord, x.UpdateRecord)
					}
				case 13:
					q, err := e.QueuedHandOversFrom(from, limit)
					out = "qfrom " + errClass(err)
					for _, h := range q {
						out += " " + h.UUID.String()
					}
				case 14:
					m, err := e.AppointmentsByLocators(locs)
					out = "bylocs " + errClass(err)
					var ks []string
					for k, v := range m {
						s := k.String()
						for _, a := range v {
							s += " " + a.UUID().String()
						}
						ks = append(ks, s)
					}
					slices.Sort(ks)
					out += fmt.Sprint(ks)
					if len(locs) > 0 {
						var got []string
						err := e.ForEachAppointment(&locs[0], func(a *store.Appointment, t *store.Tracker) error {
							got = append(got, fmt.Sprint(a.UUID(), t != nil))
							return nil
						})
						out += fmt.Sprint(got, errClass(err))
						as, err := e.AppointmentsByLocator(locs[0])
						out += fmt.Sprint(len(as), errClass(err))
					}
				case 15:
					err := e.BulkLoad(bulkUsers, bulk)
					out = "bulk " + errClass(err)
				case 0, 1:
					ui, err := e.UpdateUser(dUser(uidx), func(prev store.UserInfo, exists bool) (store.UserInfo, error) {
						if slots == 7 {
							return prev, errPolicy
						}
						return store.UserInfo{AvailableSlots: prev.AvailableSlots + slots, SubscriptionStart: 1, SubscriptionExpiry: expiry}, nil
					})
					out = fmt.Sprintf("updateuser %+v %s", ui, errClass(err))
				case 2, 3, 4:
					var ups []store.AppointmentUpsert
					for _, it := range items {
						a := &store.Appointment{Appointment: teos.Appointment{Locator: dLoc(it.l), EncryptedBlob: bytes.Repeat([]byte{byte(it.blob)}, it.blob), ToSelfDelay: 20},
							UserID: dUser(it.u), UserSignature: fmt.Sprintf("s%d", it.sig), StartBlock: uint32(step)}
						ho := it.ho
						ups = append(ups, store.AppointmentUpsert{Appointment: a, Policy: func(u store.UserInfo, prev *store.Appointment, trig bool) (store.UserInfo, error) {
							if trig {
								return u, errPolicy
							}
							need := teos.Slots(len(a.EncryptedBlob))
							var old uint32
							if prev != nil {
								old = teos.Slots(len(prev.EncryptedBlob))
							}
							if u.AvailableSlots+old < need {
								return u, errPolicy
							}
							u.AvailableSlots = u.AvailableSlots + old - need
							return u, nil
						}, HandOver: func() *store.HandOver {
							if !ho {
								return nil
							}
							return &store.HandOver{Block: chainhash.Hash{byte(step % 3)}, Dispute: []byte{3, byte(step)}}
						}})
					}
					res, err := e.UpsertAppointments(ups)
					out = fmt.Sprintf("upserts %s", errClass(err))
					for _, x := range res {
						out += fmt.Sprintf(" [%+v %s]", x.User, errClass(x.Err))
					}
				case 5:
					err := e.DeleteAppointments(ids, refund)
					out = "delete " + errClass(err)
				case 6:
					err := e.ApplyChanges(&ch)
					out = "apply " + errClass(err)
				case 7:
					got, err := e.DeleteOutdatedUsers(height, delta)
					slices.SortFunc(got, func(x, y teos.UserID) int { return bytes.Compare(x[:], y[:]) })
					out = fmt.Sprintf("outdated %v %s", got, errClass(err))
				case 8:
					if len(ids) > 0 {
						err := e.PutTracker(&store.Tracker{UUID: ids[0], DisputeTx: []byte{9}, PenaltyTx: []byte{8}, Height: 5})
						out = "puttracker " + errClass(err)
					} else {
						n, err := e.DropHandOvers(chainhash.Hash{byte(step % 3)})
						out = fmt.Sprintf("drop %d %s", n, errClass(err))
					}
				}
				outs = append(outs, out+"\n"+snapshot(e))
			}
			if !reflect.DeepEqual(outs[0], outs[1]) {
				t.Fatalf("seed %d step %d op %d:\nbolt: %s\npg:   %s", seed, step, op, outs[0], outs[1])
			}
		}
		bb.Close()
		pg.Close()
	}
}
