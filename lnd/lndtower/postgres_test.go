package lndtower

import (
	"testing"

	"github.com/teos-go/teos/internal/pgtest"
)

// TestOnPostgres runs the server and lookout tests again with the records in PostgreSQL:
// lnd's reply codes, nothing stored for a refused update, and the lookout's matches are the
// same on both engines.
func TestOnPostgres(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	pgDatabase = srv.NewDatabase
	defer func() { pgDatabase = nil }()
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"CreateSessionPolicies", TestCreateSessionPolicies},
		{"StateUpdates", TestStateUpdates},
		{"ResentUpdateDoesNotGrowTheSession", TestResentUpdateDoesNotGrowTheSession},
		{"BadMessages", TestBadMessages},
		{"LookoutJusticePerKitType", TestLookoutJusticePerKitType},
		{"LookoutBadKits", TestLookoutBadKits},
		{"TrackerCodec", TestTrackerCodec},
		{"ClientWritesDuringABlock", TestClientWritesDuringABlock},
		{"SessionStorageCap", TestSessionStorageCap},
		{"SessionRate", TestSessionRate},
	} {
		t.Run(c.name, c.fn)
	}
}
