package api_test

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// readFaults: the user whose record a faultyStore cannot read (a store fault that is not an
// answer, e.g. a PostgreSQL connection lost on one read), per store.
var readFaults sync.Map // *faultyStore -> teos.UserID

func (d *faultyStore) User(id teos.UserID) (store.UserInfo, bool, error) {
	if v, ok := readFaults.Load(d); ok && v.(teos.UserID) == id {
		return store.UserInfo{}, false, errors.New("load user: connection reset by peer")
	}
	return d.Store.User(id)
}

// REVIEW: a store fault while authenticating one item of a batch failed the whole
// add_appointments call (extensions.go:72) AFTER the other items were committed: the gate held
// and re-ran the committed batch (hold.Do: "fn must leave nothing behind") and past the bound
// answered alice and bob 503 (hold.ErrUnavailable: "Nothing of the request was written")
// although their appointments were stored. Fixed: the batch stops before writing anything.
// (Past the bound the batch's other clients still get 503 where one by one they get receipts:
// one call, one hold.)
func TestReviewAuthFaultInBatchWritesNothing(t *testing.T) {
	alice, bob, mallory := newUser("alice"), newUser("bob"), newUser("mallory")
	_, co := both(t, 200*time.Millisecond, func(tw *eqTower) { readFaults.Store(tw.disk, mallory.id) })
	reqs := []eqReq{
		addReq("alice", alice, appointment(1, []byte("alice"))),
		addReq("mallory (read fault)", mallory, appointment(2, []byte("mallory"))),
		addReq("bob", bob, appointment(3, []byte("bob"))),
	}
	answers, plug := co.queueBehindPlug(t, reqs)
	close(co.plug.unplug)
	<-plug
	got := answers()
	for i, u := range []user{alice, mallory, bob} {
		_, err := co.disk.Appointment(teos.NewUUID(locator(byte(i+1)), u.id))
		stored := err == nil
		if got[i].status == http.StatusServiceUnavailable && stored {
			t.Errorf("%s: answered 503 (nothing written) but the appointment is stored", reqs[i].name)
		}
		if got[i].status == http.StatusOK && !stored {
			t.Errorf("%s: receipt but not stored", reqs[i].name)
		}
	}
}

// The fault clears while the batch is held: every add gets its receipt, as one by one.
func TestReviewTransientAuthFaultInBatch(t *testing.T) {
	alice, bob, mallory := newUser("alice"), newUser("bob"), newUser("mallory")
	plain, co := both(t, time.Hour, nil)
	reqs := []eqReq{
		addReq("alice", alice, appointment(1, []byte("alice"))),
		addReq("mallory (read fault)", mallory, appointment(2, []byte("mallory"))),
		addReq("bob", bob, appointment(3, []byte("bob"))),
	}
	want := plain.sendPlain(t, reqs)
	readFaults.Store(co.disk, mallory.id)
	answers, plug := co.queueBehindPlug(t, reqs)
	close(co.plug.unplug)
	<-plug
	waitFor(t, "the batch held", func() bool { return co.held.Gate.Held() == 1 })
	readFaults.Delete(co.disk)
	sameReplies(t, reqs, want, answers())
}
