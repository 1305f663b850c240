package config

import (
	"path/filepath"
	"testing"
)

func TestImportRustTeosFlag(t *testing.T) {
	home := withHome(t)
	dir := writeConf(t, "import_rust_teos = \"/from/the/file\"\n")
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg.ImportRustTeos != "" || len(warnings) != 1 {
		t.Fatalf("a file key set ImportRustTeos = %q (warnings %q); it is a flag only", cfg.ImportRustTeos, warnings)
	}
	cfg, _ = mustLoad(t, "--datadir", dir, "--importrustteos", "~/old/teos_db.sql3")
	if want := filepath.Join(home, "old", "teos_db.sql3"); cfg.ImportRustTeos != want {
		t.Fatalf("ImportRustTeos = %q, want %q", cfg.ImportRustTeos, want)
	}
}
