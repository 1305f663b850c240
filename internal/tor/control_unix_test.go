//go:build unix

package tor

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCookieFileNotRegular: the peer names the cookie file. A FIFO there (no writer) would
// block the open for good, and with it Publish and teosd's shutdown; a device is no cookie
// either. Both are refused without being read.
func TestCookieFileNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "cookie-fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for name, path := range map[string]string{"fifo": fifo, "device": "/dev/zero"} {
		sent := make(chan string, 4)
		c := fakePeer(t, func(cmd string) string {
			sent <- cmd
			return "250 OK\r\n"
		})
		done := make(chan error, 1)
		go func() {
			done <- c.AuthenticateWith(AuthSafeCookie, ProtocolInfo{Methods: []string{AuthSafeCookie}, CookieFile: path})
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: authentication still reading the cookie file", name)
		}
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s: err = %v, want ErrAuth: not a regular file", name, err)
		}
		if len(sent) != 0 {
			t.Errorf("%s: sent %q for a cookie that is no file", name, <-sent)
		}
	}
}
