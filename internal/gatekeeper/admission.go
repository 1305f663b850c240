package gatekeeper

import (
	"errors"
	"fmt"

	"github.com/teos-go/teos/pkg/teos"
)

// Admission decides who may register or renew (teos-go extension). The zero value lets
// everyone in, as rust-teos does.
type Admission struct {
	// Allowlist, if set, must report the user id as allowed (registration = "allowlist").
	Allowlist func(id teos.UserID) (bool, error)
	// MaxStoredBytes > 0 refuses registrations once StoredBytes reaches it.
	MaxStoredBytes int64
	StoredBytes    func() (int64, error)
}

// RegistrationRefusedError is a registration the tower's policy refused; Message is what the
// client is told.
type RegistrationRefusedError struct{ Message string }

func (e *RegistrationRefusedError) Error() string { return e.Message }

// Messages of the refusals; the public API answers them as rust-teos's registration errors.
const (
	MsgNotAllowed  = "User not allowed to register with this tower"
	MsgStorageFull = "The tower is not accepting registrations: its storage is full"
)

// admit applies the admission policy to a registration or renewal of id.
func (g *Gatekeeper) admit(id teos.UserID) error {
	a := g.cfg.Admission
	if a.Allowlist != nil {
		ok, err := a.Allowlist(id)
		if err != nil {
			return fmt.Errorf("check allowlist: %w", err)
		}
		if !ok {
			return &RegistrationRefusedError{MsgNotAllowed}
		}
	}
	if a.MaxStoredBytes > 0 {
		if a.StoredBytes == nil {
			return errors.New("max stored bytes set without a way to measure them")
		}
		n, err := a.StoredBytes()
		if err != nil {
			return fmt.Errorf("measure stored bytes: %w", err)
		}
		if n >= a.MaxStoredBytes {
			g.log.Warn("registration refused: stored bytes at the cap", "user_id", id, "stored_bytes", n, "max_stored_bytes", a.MaxStoredBytes)
			return &RegistrationRefusedError{MsgStorageFull}
		}
	}
	return nil
}
