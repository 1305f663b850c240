package gatekeeper

import (
	"errors"
	"testing"
)

func TestAdmissionAllowlist(t *testing.T) {
	g, db := newGatekeeper(t)
	g.cfg.Admission = Admission{Allowlist: db.UserAllowed}
	_, id := newKey(t)
	var refused *RegistrationRefusedError
	if _, err := g.Register(id); !errors.As(err, &refused) || refused.Message != MsgNotAllowed {
		t.Fatalf("unknown user: %v, want %q", err, MsgNotAllowed)
	}
	if _, ok, _ := db.User(id); ok {
		t.Fatal("a refused registration stored the user")
	}
	if _, err := db.AllowUser(id); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Register(id); err != nil {
		t.Fatalf("allowed user: %v", err)
	}
	if _, err := db.DisallowUser(id); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Register(id); !errors.As(err, &refused) {
		t.Fatalf("renewal after removeuser: %v, want refused", err)
	}
	if info, _, _ := db.User(id); info.AvailableSlots != slots {
		t.Fatalf("refused renewal changed the subscription: %+v", info)
	}
}

func TestAdmissionStoredBytesCap(t *testing.T) {
	g, _ := newGatekeeper(t)
	stored := int64(999)
	g.cfg.Admission = Admission{MaxStoredBytes: 1000, StoredBytes: func() (int64, error) { return stored, nil }}
	_, id := newKey(t)
	if _, err := g.Register(id); err != nil {
		t.Fatalf("under the cap: %v", err)
	}
	stored = 1000
	var refused *RegistrationRefusedError
	if _, err := g.Register(id); !errors.As(err, &refused) || refused.Message != MsgStorageFull {
		t.Fatalf("at the cap: %v, want %q", err, MsgStorageFull)
	}
	failing := errors.New("disk gone")
	g.cfg.Admission.StoredBytes = func() (int64, error) { return 0, failing }
	if _, err := g.Register(id); !errors.Is(err, failing) || errors.As(err, &refused) {
		t.Fatalf("measurement failure: %v, want an internal error, not a refusal", err)
	}
}
