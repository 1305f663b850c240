package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFileLogSaysWhereItLooked(t *testing.T) {
	dir := t.TempDir()
	cfg, _, err := Load([]string{"--datadir", dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, FileName)
	msg, attr := cfg.fileLog()
	if msg != "config file not found, using defaults and flags" || attr.Value.String() != want {
		t.Fatalf("no file: %q %v, want the not-found line with %s", msg, attr, want)
	}
	if err := os.WriteFile(want, []byte("debug = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msg, attr = cfg.fileLog()
	if msg != "config file" || attr.Value.String() != want {
		t.Fatalf("with a file: %q %v, want %q with %s", msg, attr, "config file", want)
	}
}
