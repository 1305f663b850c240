package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/config"
)

// TestStopDuringStartup: SIGTERM while teosd is still starting (here: waiting on a bitcoind
// that accepted the connection and never answers) is a requested stop: exit 0, no error line
// blaming bitcoind.
func TestStopDuringStartup(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	called := make(chan struct{}, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, unanswered, until the test ends
			select {
			case called <- struct{}{}:
			default:
			}
		}
	}()
	ctx, stop := context.WithCancel(context.Background())
	go func() { <-called; stop() }()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--datadir", t.TempDir(), "--btcnetwork", "regtest", "--btcrpcuser", "u", "--btcrpcpassword", "p",
		"--btcrpcconnect", "127.0.0.1", "--btcrpcport", fmt.Sprint(l.Addr().(*net.TCPAddr).Port)}, &stdout, &stderr)
	if code != 0 || strings.Contains(stderr.String(), "level=ERROR") {
		t.Fatalf("stopped during start-up: exit %d, want 0 and no error\n%s", code, stderr.String())
	}
}

// TestOpenStoreLockedSaysWhy: a store another process holds is refused with a reason naming
// the lock, not bbolt's bare "timeout".
func TestOpenStoreLockedSaysWhy(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir, cfg.BTCNetwork = t.TempDir(), "regtest"
	if err := os.MkdirAll(cfg.NetworkDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	holder, err := bolt.Open(filepath.Join(cfg.NetworkDir(), "teos.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	st, err := openStore(context.Background(), &cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		st.Close()
		t.Fatal("opened a store another process holds")
	}
	if !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("openStore: %v, want a reason naming the lock", err)
	}
}
