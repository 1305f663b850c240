package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/client"
	"github.com/teos-go/teos/pkg/teos"
)

// TestRegistrationAllowlist: in allowlist mode a user id registers (or renews) only while the
// operator has it added with teos-cli; refusals are rust-teos's registration error.
func TestRegistrationAllowlist(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "registration = \"allowlist\"\n")
	tw.start()
	u := newUser(t)
	refused := `{"error":"User not allowed to register with this tower","error_code":65}`
	if code, raw := post(t, tw.apiURL, "/register", map[string]string{"user_id": u.id.String()}, nil); code != http.StatusBadRequest || string(raw) != refused {
		t.Fatalf("unknown id: %d %s, want 400 %s", code, raw, refused)
	}
	var added struct {
		UserID  string `json:"user_id"`
		Allowed bool   `json:"allowed"`
		Changed bool   `json:"changed"`
	}
	tw.cliOK(t, &added, "adduser", u.id.String())
	if !added.Allowed || !added.Changed || added.UserID != u.id.String() {
		t.Fatalf("adduser printed %+v", added)
	}
	first := u.register(t, tw)
	var ids []string
	tw.cliOK(t, &ids, "getallowedusers")
	if !slices.Equal(ids, []string{u.id.String()}) {
		t.Fatalf("getallowedusers = %v", ids)
	}
	// The list survives a restart (it is in the database).
	tw.stop()
	tw.start()
	if r := u.register(t, tw); r.AvailableSlots <= first.AvailableSlots {
		t.Fatalf("renewal after restart: %+v", r)
	}
	tw.cliOK(t, &added, "removeuser", u.id.String())
	if code, raw := post(t, tw.apiURL, "/register", map[string]string{"user_id": u.id.String()}, nil); code != http.StatusBadRequest || string(raw) != refused {
		t.Fatalf("renewal after removeuser: %d %s", code, raw)
	}
	// The subscription itself is kept.
	a := randomAppointment(t, 100)
	u.add(t, tw, a)
	if r := tw.cli(t, "adduser", "02abcd"); r.code == 0 {
		t.Fatal("adduser accepted a malformed id")
	}
	tw.stop()
}

// TestRegistrationRate measures how many appointment bytes one client address can make an
// open tower store in a few seconds, without and with registration_rate, with small
// subscriptions so that registering is the bottleneck it would be for an attacker. The rate
// is checked exactly (third registration in the minute refused); the byte figures are logged.
func TestRegistrationRate(t *testing.T) {
	node := startNode(t)
	const slots = 200
	window := 8 * time.Second
	for _, rate := range []int{0, 2} {
		tw := newTower(t, node, fmt.Sprintf("subscription_slots = %d\nregistration_rate = %d\n", slots, rate))
		tw.start()
		stored, regs, refusals := fillFromOneAddress(t, tw, slots, window)
		if rate == 0 {
			perMinute := float64(stored) * float64(time.Minute) / float64(window)
			t.Logf("no registration_rate: one address registered %d keys and stored %d bytes of blobs in %v: %.1f MB/min, bounded only by how fast the tower takes uploads",
				regs, stored, window, perMinute/1e6)
		} else {
			t.Logf("registration_rate = %d: one address registered %d keys (%d refused) and stored %d bytes of blobs in %v; from then on at most %d registrations x %d slots x %d bytes = %.2f MB/min",
				rate, regs, refusals, stored, window, rate, slots, maxBlob, float64(rate*slots*maxBlob)/1e6)
		}
		if rate > 0 {
			// The bucket holds at most rate registrations: rate+1 more in a row meet a refusal.
			if regs > rate {
				t.Fatalf("registration_rate %d: %d registrations in %v", rate, regs, window)
			}
			refused := false
			for range rate + 1 {
				u := newUser(t)
				code, raw := post(t, tw.apiURL, "/register", map[string]string{"user_id": u.id.String()}, nil)
				if code == http.StatusBadRequest && string(raw) == rateRefusal {
					refused = true
					break
				}
				if code != http.StatusOK {
					t.Fatalf("register: %d %s", code, raw)
				}
			}
			if !refused {
				t.Fatalf("registration_rate %d: %d registrations in a row all accepted", rate, rate+1)
			}
		}
		tw.stop()
	}
}

const rateRefusal = `{"error":"Too many registrations from this address, try again later","error_code":65}`

// maxBlob is about the largest blob a 2048-byte appointment body holds (hex, plus the rest).
const maxBlob = 900

// fillFromOneAddress registers fresh keys and fills each with the largest appointments
// /add_appointments takes, until window is over; it returns the blob bytes stored.
func fillFromOneAddress(t *testing.T, tw *tower, slots int, window time.Duration) (stored, regs, refusals int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), window)
	defer cancel()
	const blobLen = maxBlob
	for ctx.Err() == nil {
		u := newUser(t)
		code, raw := post(t, tw.apiURL, "/register", map[string]string{"user_id": u.id.String()}, nil)
		if code != http.StatusOK {
			if string(raw) != rateRefusal {
				t.Fatalf("register: %d %s", code, raw)
			}
			refusals++
			time.Sleep(100 * time.Millisecond)
			continue
		}
		regs++
		cl := client.New(tw.apiURL, tw.id, u.key)
		appts := make([]teos.Appointment, slots)
		for i := range appts {
			appts[i] = randomAppointment(t, blobLen)
		}
		for _, r := range cl.AddAppointments(ctx, appts, client.SendOptions{Concurrency: 1}) {
			if r.Err == nil {
				stored += blobLen
			}
		}
	}
	return stored, regs, refusals
}
