package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// An operator whose teos.toml is not in the data dir teosd uses (a systemd unit's
// --datadir, another user's home) learns where teosd looked before the error it causes.
func TestConfigFileNotFoundSaysWhere(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--datadir", dir}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1 (no bitcoind auth)\n%s", code, stderr.String())
	}
	logs := stderr.String()
	where := strings.Index(logs, `msg="config file not found, using defaults and flags" path=`+filepath.Join(dir, "teos.toml"))
	refused := strings.Index(logs, `msg="invalid configuration: no valid bitcoind auth`)
	if where < 0 || refused < where {
		t.Fatalf("want the config file's path, then the refusal:\n%s", logs)
	}
}
