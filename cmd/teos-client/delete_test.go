package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/durable/durabletest"
)

// A deletion that was never sent (the tower has no delete extension) or that the tower
// refused leaves no record behind: a later "not found" must not read as this user's deletion.
func TestDeleteRecordOnlyWhileUncertain(t *testing.T) {
	tw := newHookTower(t) // GET /info and /delete_appointment: 404
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", tw.URL, "--towerid", tw.id(), "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	code, _, stderr := runCLI(t, false, "--datadir", dir, "delete", strings.Repeat("ab", 16))
	if code != exitFailure || !strings.Contains(stderr, "delete_appointment extension") {
		t.Fatalf("delete: exit %d, stderr %s", code, stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, deletionsDir, "*")); len(m) != 0 {
		t.Fatalf("records left: %v", m)
	}
}

// The record of a deletion is written before the request so that a later run knows an
// unanswered deletion was this user's: the deletions directory's own name must survive a power
// loss too (its parent, the data dir, flushed once it is created), not only the record in it.
func TestDeletionsDirNameFlushed(t *testing.T) {
	tw := newHookTower(t)
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", tw.URL, "--towerid", tw.id(), "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	var code int
	syncs := durabletest.Syncs(t, func() { code, _, _ = runCLI(t, false, "--datadir", dir, "delete", strings.Repeat("ab", 16)) })
	if code != exitFailure {
		t.Fatalf("delete: exit %d", code)
	}
	if !slices.Contains(syncs, filepath.Join(dir, deletionsDir)) || !slices.Contains(syncs, dir) {
		t.Fatalf("flushed %v; want the deletions dir (its record) and the data dir (its name)", syncs)
	}
}
