package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// TestAddAppointmentsMatchesSequentialAdds sends one batch to a tower and the same items one
// by one to /add_appointment on an identical tower: the batch's results must be exactly the
// single replies, in order, and both stores must end up the same.
func TestAddAppointmentsMatchesSequentialAdds(t *testing.T) {
	batch, single := newStack(t), newStack(t)
	alice, bob, mallory := newUser("alice"), newUser("bob"), newUser("mallory")
	for _, s := range []*stack{batch, single} {
		s.register(t, alice)
		s.register(t, bob)
	}
	a1, a2, a3 := appointment(1, []byte{1}), appointment(2, []byte{2}), appointment(3, []byte{3})
	a1b := appointment(1, []byte{9, 9})
	items := []string{
		addBody(a1, alice.signAdd(a1)),
		addBody(a1, bob.signAdd(a1)),
		addBody(a2, alice.signAdd(a2)),     // alice's last slot
		addBody(a3, alice.signAdd(a3)),     // none left: 401 / 7
		addBody(a3, mallory.signAdd(a3)),   // not registered: 401 / 7
		addBody(a1b, alice.signAdd(a1b)),   // update of the first item: free
		`{"appointment":{"locator":"00"}}`, // inspector: missing field
		addBody(a1, bob.signAdd(a2)),       // signature over something else: 401 / 7
	}
	want := make([]string, len(items))
	for i, it := range items {
		_, want[i] = single.post(t, "/add_appointment", it)
	}
	batch.expectOK(t, "/add_appointments", `{"appointments":[`+strings.Join(items, ",")+`]}`,
		`{"results":[`+strings.Join(want, ",")+`]}`)

	var reply struct {
		Results []struct {
			Signature string `json:"signature"`
		} `json:"results"`
	}
	_, body := batch.post(t, "/add_appointments", `{"appointments":[`+items[0]+`]}`) // an update
	if err := json.Unmarshal([]byte(body), &reply); err != nil || len(reply.Results) != 1 {
		t.Fatalf("reply %s: %v", body, err)
	}
	if !wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(alice.signAdd(a1), testHeight), reply.Results[0].Signature, batch.towerID) {
		t.Fatal("batch receipt does not recover to the tower id")
	}
	single.add(t, alice, a1)
	if b, s := batch.snapshot(t), single.snapshot(t); !equalStates(b, s) {
		t.Fatalf("stores differ:\nbatch  %+v\nsingle %+v", b, s)
	}
}

func equalStates(a, b dbState) bool {
	if a.Counts != b.Counts || len(a.Users) != len(b.Users) || len(a.Appointments) != len(b.Appointments) {
		return false
	}
	for id, u := range a.Users {
		if b.Users[id] != u {
			return false
		}
	}
	for id, x := range a.Appointments {
		y, ok := b.Appointments[id]
		if !ok || x.UserSignature != y.UserSignature || x.StartBlock != y.StartBlock || string(x.EncryptedBlob) != string(y.EncryptedBlob) {
			return false
		}
	}
	return true
}

func TestAddAppointmentsWholeRequest(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)
	a := appointment(1, []byte{1})
	one := `{"appointments":[` + addBody(a, alice.signAdd(a)) + `]}`
	s.expectError(t, "/add_appointments", `{"appointments":[]}`, http.StatusBadRequest, "`appointments` is empty", teos.ErrCodeInvalidRequestFormat)
	s.expectError(t, "/add_appointments", `{"appointments":{}}`, http.StatusBadRequest,
		"invalid type: map, expected a sequence at line 1 column 16", teos.ErrCodeWrongFieldType)
	s.reachable.Store(false)
	s.expectError(t, "/add_appointments", one, http.StatusServiceUnavailable, msgUnavailable, teos.ErrCodeServiceUnavailable)
}

func TestInfo(t *testing.T) {
	s := newStack(t)
	s.reachable.Store(false) // info does not need bitcoind
	resp, err := s.client.Get(s.url + "/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"tower_id":"` + s.towerID.String() + `","version":"` + teos.Version + `","extensions":["add_appointments","delete_appointment","add_appointments_compressed","add_appointments_stream"]}`
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("GET /info: %d %s, want %s", resp.StatusCode, body, want)
	}
}
