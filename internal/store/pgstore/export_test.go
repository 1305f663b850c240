package pgstore

import "time"

// SetListenCheckTimeout shortens the check of a quiet LISTEN connection for a test; it
// returns the restore.
func SetListenCheckTimeout(d time.Duration) func() {
	old := listenCheckTimeout
	listenCheckTimeout = d
	return func() { listenCheckTimeout = old }
}
