package store

import (
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/teos"
)

// Engine is the store contract: every method the core (gatekeeper, watcher, responder, chain
// monitor), the admin API and the composition root use. *Store (bbolt) and pgstore.Store
// (PostgreSQL) implement it, and storetest.Run pins the behaviour both must share. A method
// added to one engine is added here and to storetest together.
type Engine interface {
	// Users and subscriptions.
	User(id teos.UserID) (UserInfo, bool, error)
	UpdateUser(id teos.UserID, fn func(prev UserInfo, exists bool) (UserInfo, error)) (UserInfo, error)
	Users() ([]teos.UserID, error)
	UserAppointments(id teos.UserID) ([]teos.UUID, error)
	UserLocators(id teos.UserID) ([]teos.Locator, error)
	DeleteOutdatedUsers(height, expiryDelta uint32) ([]teos.UserID, error)

	// Appointments and trackers.
	UpsertAppointment(a *Appointment, fn func(user UserInfo, prev *Appointment, triggered bool) (UserInfo, error)) (UserInfo, error)
	UpsertAppointments(items []AppointmentUpsert) ([]UpsertResult, error)
	Appointment(id teos.UUID) (*Appointment, error)
	Tracker(id teos.UUID) (*Tracker, error)
	AppointmentsByLocator(loc teos.Locator) ([]*Appointment, error)
	AppointmentsByLocators(locs []teos.Locator) (map[teos.Locator][]*Appointment, error)
	DeleteAppointments(ids []teos.UUID, refund bool) error
	PutTracker(t *Tracker) error
	Trackers() ([]*Tracker, error)
	ForEachAppointment(loc *teos.Locator, fn func(a *Appointment, t *Tracker) error) error
	Counts() (users, watcherAppointments, trackers int, err error)
	ApplyChanges(c *Changes) error

	// The hand-over queue.
	QueuedHandOvers() ([]QueuedHandOver, error)
	QueuedHandOversFrom(from teos.UUID, limit int) ([]QueuedHandOver, error)
	DropHandOvers(block chainhash.Hash) (int, error)
	WaitWrites() error

	// Tower keys and the chain tip.
	TowerKey() (sk [32]byte, ok bool, err error)
	AddTowerKey(sk [32]byte) error
	TowerKeys() ([][32]byte, error)
	LastBlock() (hash chainhash.Hash, height uint32, ok bool, err error)
	SetLastBlock(hash chainhash.Hash, height uint32) error

	// The registration allowlist and the registration cap's measure (allowlist.go).
	AllowUser(id teos.UserID) (changed bool, err error)
	DisallowUser(id teos.UserID) (changed bool, err error)
	UserAllowed(id teos.UserID) (bool, error)
	AllowedUsers() ([]teos.UserID, error)
	StoredBytes() (int64, error)

	// The lnd front end's records (lnd.go).
	LndRecords

	// BulkLoad fills fixtures (see Store.BulkLoad); Close flushes queued writes and releases
	// the database.
	BulkLoad(users map[teos.UserID]UserInfo, appts []*Appointment) error
	Close() error
}

var _ Engine = (*Store)(nil)
