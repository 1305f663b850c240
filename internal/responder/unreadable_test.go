package responder

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// damagedStore reports one tracker record as unreadable, next to the readable ones.
type damagedStore struct{ *store.Store }

func (s damagedStore) TrackersChecked() ([]*store.Tracker, []store.UnreadableTracker, error) {
	trs, bad, err := s.Store.TrackersChecked()
	return trs, append(bad, store.UnreadableTracker{UUID: teos.UUID{0xba, 0xd}, Err: store.ErrCorrupt}), err
}

// An unreadable tracker record is logged and skipped: the block still confirms the others.
func TestUnreadableTrackerDoesNotStopBlocks(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	var logs bytes.Buffer
	e.r = New(Config{Store: damagedStore{e.store}, Carrier: e.carrier, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, startHeight)
	e.connect(t, startHeight+1, b.penalty)
	e.wantStatus(t, b, startHeight+1, true)
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), (teos.UUID{0xba, 0xd}).String()) {
		t.Fatalf("the unreadable record was not logged:\n%s", logs.String())
	}
	// Logged once, not on every block.
	e.connect(t, startHeight+2)
	e.connect(t, startHeight+3)
	if n := strings.Count(logs.String(), "cannot be read"); n != 1 {
		t.Fatalf("the unreadable record was logged %d times over 3 blocks, want once:\n%s", n, logs.String())
	}
}
