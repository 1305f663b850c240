package main

import (
	"path/filepath"
	"strings"
	"testing"
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
