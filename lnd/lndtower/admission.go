package lndtower

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/lightningnetwork/lnd/watchtower/wtdb"

	"github.com/teos-go/teos/internal/frontend"
	"github.com/teos-go/teos/internal/store"
)

// A session is lnd's registration: it is what a client opens before it sends updates, and
// what fills the store. The operator's registration caps apply to new sessions; the updates
// of a session already stored are always accepted, as a teos user's slots already bought.
//
// Both refusals reach the client as wtserver's answer to a failed insert, CodeTemporaryFailure
// (40). lnd's client (0.21, wtclient's session negotiator) treats every CreateSessionReply
// code but OK and CreateSessionCodeAlreadyExists alike: the attempt failed, it tries the
// tower's next address, then backs off (10 s doubling to 5 min) and tries the next tower
// candidate, this one again in turn, with the same session key. 40 also says what is true: the tower may accept later,
// and the client stays free to use it; CodePermanentFailure (50) says the opposite, and
// CreateSessionCodeAlreadyExists (60) would make the client retry at once with a fresh key.
var (
	// ErrStorageFull refuses a new session once the store holds max_stored_bytes.
	ErrStorageFull = errors.New("the tower is not accepting sessions: its storage is full")
	// ErrSessionRate refuses a new session over registration_rate for its client's address.
	ErrSessionRate = errors.New("too many new sessions from this address, try again later")
)

// sessionCaps is what the operator caps for new sessions; the zero value caps nothing.
type sessionCaps struct {
	// MaxStoredBytes > 0 refuses new sessions once StoredBytes reaches it (max_stored_bytes).
	MaxStoredBytes int64
	StoredBytes    func() (int64, error)
	// Rate, if set, limits new sessions per client address (registration_rate); addrOf names
	// the address of the connection serving a session id.
	Rate   frontend.RegistrationBudget
	addrOf func(wtdb.SessionID) string
}

func (c sessionCaps) any() bool { return c.MaxStoredBytes > 0 || c.Rate != nil }

// cappedDB is DB with the caps applied to InsertSessionInfo; the rest is DB's.
type cappedDB struct {
	*DB
	caps sessionCaps
	log  *slog.Logger
}

// InsertSessionInfo stores s as DB does, unless it is a new session the caps refuse.
// Replacing a stored session that has no update yet (a retried CreateSession) adds nothing and
// is not capped.
func (d *cappedDB) InsertSessionInfo(s *wtdb.SessionInfo) error {
	var stored int64
	full := false
	if d.caps.MaxStoredBytes > 0 {
		if d.caps.StoredBytes == nil {
			return errors.New("max stored bytes set without a way to measure them")
		}
		n, err := d.caps.StoredBytes()
		if err != nil {
			// A fault of the tower's own: answered 40 as well, the client retries.
			return fmt.Errorf("measure stored bytes: %w", err)
		}
		stored, full = n, n >= d.caps.MaxStoredBytes
	}
	var addr string
	charged := false
	if d.caps.Rate != nil {
		// Only a new session spends the budget: a stored one is retried or refused as before.
		_, exists, err := d.DB.s.LndSession(store.LndSessionID(s.ID))
		if err != nil {
			return err
		}
		addr, charged = d.caps.addrOf(s.ID), !exists
		if charged && !d.caps.Rate.Take(addr) {
			d.log.Debug("lnd session refused: registration_rate", "session", s.ID.String(), "remote", addr)
			return ErrSessionRate
		}
	}
	added, err := d.DB.insertSession(s, func() error {
		if full {
			return ErrStorageFull
		}
		return nil
	})
	if charged && !added {
		d.caps.Rate.GiveBack(addr) // nothing new was granted
	}
	if errors.Is(err, ErrStorageFull) {
		d.log.Warn("lnd session refused: stored bytes at the cap", "session", s.ID.String(), "stored_bytes", stored, "max_stored_bytes", d.caps.MaxStoredBytes)
	}
	return err
}
