package tor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/freeport"
	"github.com/teos-go/teos/internal/tortest"
)

// These tests run Debian's tor with DisableNetwork 1 (internal/tortest): only the control
// port on loopback is used, and ADD_ONION works without the Tor network.

func dialAuth(t *testing.T, tr *tortest.Tor) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), tr.ControlAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pi, err := c.ProtocolInfo()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Authenticate(pi); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRealTorAuthMethods(t *testing.T) {
	cookieTor := tortest.Start(t, tortest.Options{Auth: tortest.AuthCookie})
	noneTor := tortest.Start(t, tortest.Options{Auth: tortest.AuthNone})
	pwTor := tortest.Start(t, tortest.Options{Auth: tortest.AuthPassword, Password: "hunter2"})

	cases := []struct {
		name    string
		tor     *tortest.Tor
		method  string // "" = Authenticate's own choice
		offered string
		cookie  string // overrides the cookie file tor names
		wantErr error
	}{
		{"cookie tor: default picks safe cookie", cookieTor, "", "SAFECOOKIE", "", nil},
		{"cookie tor: safe cookie", cookieTor, AuthSafeCookie, "SAFECOOKIE", "", nil},
		{"cookie tor: plain cookie", cookieTor, AuthCookie, "COOKIE", "", nil},
		{"cookie tor: wrong cookie", cookieTor, AuthCookie, "COOKIE", "wrong", ErrAuth},
		{"cookie tor: wrong cookie, safe cookie", cookieTor, AuthSafeCookie, "SAFECOOKIE", "wrong", ErrAuth},
		{"no-auth tor", noneTor, "", "NULL", "", nil},
		{"password-only tor", pwTor, "", "HASHEDPASSWORD", "", ErrAuth},
	}
	wrong := filepath.Join(t.TempDir(), "wrong-cookie")
	if err := os.WriteFile(wrong, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(context.Background(), tc.tor.ControlAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			pi, err := c.ProtocolInfo()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(pi.Methods, ","), tc.offered) {
				t.Fatalf("tor offers %v, want %s among them", pi.Methods, tc.offered)
			}
			if tc.cookie == "wrong" {
				pi.CookieFile = wrong
			}
			if tc.method == "" {
				err = c.Authenticate(pi)
			} else {
				err = c.AuthenticateWith(tc.method, pi)
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error not one line: %q", err)
				}
				return
			}
			// Authenticated: a command that needs it works.
			if v, err := c.GetInfo("version"); err != nil || !strings.HasPrefix(v, "0.") {
				t.Fatalf("GETINFO version = %q, %v", v, err)
			}
		})
	}
}

// tor derives the service id from the expanded key on its own; it must match ours.
func TestRealTorAddOnionFixture(t *testing.T) {
	tr := tortest.Start(t, tortest.Options{})
	file, _ := readFixture(t)
	key, _ := ParseKey(file)
	a := dialAuth(t, tr)
	id, err := a.AddOnion(key, 9814, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if id+".onion" != fixtureAddress {
		t.Fatalf("tor says %s.onion, want %s", id, fixtureAddress)
	}
	if cur, err := a.GetInfo("onions/current"); err != nil || !strings.Contains(cur, id) {
		t.Fatalf("onions/current = %q, %v", cur, err)
	}
	// While a's service is up, the same key cannot be added again.
	b := dialAuth(t, tr)
	var re *ReplyError
	if _, err := b.AddOnion(key, 9814, "127.0.0.1:1"); !errors.As(err, &re) || re.Code != 550 {
		t.Fatalf("second ADD_ONION: %v, want 550 collision", err)
	}
	if err := a.DelOnion(id); err != nil {
		t.Fatal(err)
	}
	// An API on IPv6 loopback (Target's form for it) is a target tor takes too.
	if _, err := b.AddOnion(key, 9814, "[::1]:1"); err != nil {
		t.Fatalf("ADD_ONION after DEL_ONION, IPv6 target: %v", err)
	}
}

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in log:\n%s", s, l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// collides reports whether key's service is up in tr (ADD_ONION of the same key collides).
func collides(t *testing.T, tr *tortest.Tor, key SecretKey) bool {
	t.Helper()
	c := dialAuth(t, tr)
	defer c.Close()
	_, err := c.AddOnion(key, 1, "127.0.0.1:1")
	var re *ReplyError
	if errors.As(err, &re) && re.Code == 550 {
		return true
	}
	if err != nil {
		t.Fatalf("ADD_ONION: %v", err)
	}
	return false // ours now; Close removes it
}

func TestPublishAndRemove(t *testing.T) {
	tr := tortest.Start(t, tortest.Options{})
	key, _ := GenerateKey()
	var logs logBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Publish(ctx, ServiceConfig{ControlAddr: tr.ControlAddr, Key: key, VirtualPort: 9814, Target: "127.0.0.1:9814",
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		close(done)
	}()
	logs.waitFor(t, "Onion service: "+key.Address()+":9814")
	if !collides(t, tr, key) {
		t.Fatal("published service not in tor")
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "Onion service removed: "+key.Address()+":9814") {
		t.Fatalf("no removal logged:\n%s", logs.String())
	}
	if collides(t, tr, key) {
		t.Fatal("service still in tor after Publish returned")
	}
}

// tor not up yet, then up: Publish says so once and gets through when tor starts; after tor
// goes away and comes back, it publishes again.
func TestPublishRetries(t *testing.T) {
	// Not a port the kernel picks: tor restarts on it below, and while it is down any outgoing
	// connection on the host may take it as its source port (internal/freeport).
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	key, _ := GenerateKey()
	var logs logBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Publish(ctx, ServiceConfig{ControlAddr: addr, Key: key, VirtualPort: 9814, Target: "127.0.0.1:9814",
			Logger: slog.New(slog.NewTextHandler(&logs, nil)), MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	logs.waitFor(t, "serving clearnet only, retrying")
	tr := tortest.Start(t, tortest.Options{ControlPort: port})
	logs.waitFor(t, "Onion service: "+key.Address())
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings for one reason, want 1:\n%s", n, logs.String())
	}
	tr.Stop()
	logs.waitFor(t, "is down")
	// Several retries fall while tor is down; none may claim a publication. Checked before tor
	// comes back: once it is back, Publish may publish again at any moment.
	time.Sleep(4 * 200 * time.Millisecond)
	if strings.Count(logs.String(), "Onion service: ") != 1 {
		t.Fatalf("published twice before tor came back:\n%s", logs.String())
	}
	tortest.Start(t, tortest.Options{ControlPort: port})
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(logs.String(), "Onion service: ") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not republished:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTarget(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9814": "127.0.0.1:9814",
		"0.0.0.0:9814":   "127.0.0.1:9814",
		"[::]:9814":      "[::1]:9814",
		"10.1.2.3:1":     "10.1.2.3:1",
	} {
		a, _ := net.ResolveTCPAddr("tcp", in)
		if got := Target(a); got != want {
			t.Errorf("Target(%s) = %s, want %s", in, got, want)
		}
	}
}
