package btcdtest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestBTCDRequired(t *testing.T) {
	for _, tc := range []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"", "0", false},
		{"", "1", true},
		{"true", "", true},
		{"1", "0", true},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv("TEOS_REQUIRE_BTCD", tc.require)
		if got := btcdRequired(); got != tc.want {
			t.Errorf("CI=%q TEOS_REQUIRE_BTCD=%q: required = %v, want %v", tc.ci, tc.require, got, tc.want)
		}
	}
}

func TestLocateHonoursEnv(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "btcd")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env     string
		want    string
		wantErr error
	}{
		{exe, exe, nil},
		{filepath.Join(dir, "missing"), "", errBadEnv},
		{plain, "", errBadEnv},
		{dir, "", errBadEnv},
	} {
		t.Setenv("BTCD", tc.env)
		got, err := locate()
		if got != tc.want || !errors.Is(err, tc.wantErr) {
			t.Errorf("BTCD=%s: locate() = %q, %v; want %q, %v", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRepoRootHasInstallScript(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if !isExecutable(filepath.Join(root, "scripts", "install-btcd.sh")) {
		t.Errorf("%s/scripts/install-btcd.sh is missing or not executable", root)
	}
}
