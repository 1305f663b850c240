package pgstore

import "time"

// SetListenCheckTimeout shortens the check of a quiet LISTEN connection for a test; it
// returns the restore.
func SetListenCheckTimeout(d time.Duration) func() {
	old := listenCheckTimeout
	listenCheckTimeout = d
	return func() { listenCheckTimeout = old }
}

// SetIdleInTransactionTimeout shortens, for the stores a test opens next, how long the server
// keeps a transaction its client left idle; it returns the restore.
func SetIdleInTransactionTimeout(d time.Duration) func() {
	old := idleInTxTimeout
	idleInTxTimeout = d
	return func() { idleInTxTimeout = old }
}

// SetPublishLockWait shortens how long a block's publication waits for the adds in flight;
// it returns the restore.
func SetPublishLockWait(d time.Duration) func() {
	old := publishLockWait
	publishLockWait = d
	return func() { publishLockWait = old }
}

// MinedLockKey is the advisory lock between adds and block publications.
const MinedLockKey = minedLockKey

// SetOpTimeout shortens the bound of one operation for a test; it returns the restore.
func SetOpTimeout(d time.Duration) func() {
	old := opTimeout
	opTimeout = d
	return func() { opTimeout = old }
}

// SetMigrateLogEvery sets how often a running migration logs; it returns the restore.
func SetMigrateLogEvery(d time.Duration) func() {
	old := migrateLogEvery
	migrateLogEvery = d
	return func() { migrateLogEvery = old }
}

// SetLockHoldIdleTimeout sets how long the server keeps an add or a publication holding the
// adds' lock idle; it returns the restore.
func SetLockHoldIdleTimeout(d time.Duration) func() {
	old := lockHoldIdleTimeout
	lockHoldIdleTimeout = d
	return func() { lockHoldIdleTimeout = old }
}

// VanishedFixture and NewVanishedFixture are the vanished-instance tests' set-up
// (vanished_fixture_test.go).
type VanishedFixture = vanishedFixture

var NewVanishedFixture = newVanishedFixture
