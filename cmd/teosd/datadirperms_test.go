package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWarnOpenDataDir(t *testing.T) {
	root := t.TempDir()
	// As /var/lib: others may pass (t.TempDir's own parent is 0700).
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	closedParent := filepath.Join(root, "home")
	for _, tc := range []struct {
		name string
		dir  string
		mode os.FileMode
		warn bool
	}{
		{"rust-teos's 0755", filepath.Join(root, "rust"), 0o755, true},
		{"teosd's 0700", filepath.Join(root, "go"), 0o700, false},
		{"group only", filepath.Join(root, "group"), 0o750, false},
		{"0755 under a 0700 home", filepath.Join(closedParent, ".teos"), 0o755, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.MkdirAll(tc.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(tc.dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(closedParent, 0o700); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			warnOpenDataDir(tc.dir, slog.New(slog.NewTextHandler(&logs, nil)))
			got := strings.Contains(logs.String(), `level=WARN msg="the data dir is readable by other users`) &&
				strings.Contains(logs.String(), "datadir="+tc.dir+" mode=0755")
			if got != tc.warn || (!tc.warn && logs.Len() != 0) {
				t.Fatalf("warned %v, want %v:\n%s", got, tc.warn, logs.String())
			}
		})
	}
}
