package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRegistrationKeys(t *testing.T) {
	dir := t.TempDir()
	file := "registration = \"allowlist\"\nregistration_rate = 3\nmax_stored_bytes = 5000000000\n"
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg.Registration != RegistrationAllowlist || cfg.RegistrationRate != 3 || cfg.MaxStoredBytes != 5_000_000_000 || len(warnings) != 0 {
		t.Fatalf("from the file: %q %d %d, warnings %q", cfg.Registration, cfg.RegistrationRate, cfg.MaxStoredBytes, warnings)
	}
	cfg, _ = mustLoad(t, "--datadir", dir, "--registration", "open", "--registrationrate", "0", "--maxstoredbytes", "7")
	if cfg.Registration != RegistrationOpen || cfg.RegistrationRate != 0 || cfg.MaxStoredBytes != 7 {
		t.Fatalf("flags over the file: %q %d %d", cfg.Registration, cfg.RegistrationRate, cfg.MaxStoredBytes)
	}
	cfg.Registration = "closed"
	if errs := cfg.validateRegistration(); len(errs) != 1 || !errors.Is(errs[0], ErrBadRegistration) {
		t.Fatalf("registration %q: %v", cfg.Registration, errs)
	}
}
