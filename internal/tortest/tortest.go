// Package tortest starts a real tor (Debian's package) for tests, cut off from the Tor
// network: DisableNetwork 1, no SOCKS port, control port on loopback only.
package tortest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
)

// Auth is how the control port authenticates controllers.
type Auth int

const (
	AuthCookie   Auth = iota // CookieAuthentication 1 (tor offers COOKIE and SAFECOOKIE)
	AuthNone                 // no authentication (tor offers NULL)
	AuthPassword             // HashedControlPassword only (tor offers HASHEDPASSWORD)
)

// Options configure Start.
type Options struct {
	Auth     Auth
	Password string // for AuthPassword
	// ControlPort, if non-zero, is the loopback port to listen on; otherwise tor picks one.
	ControlPort int
}

// Tor is a running tor process.
type Tor struct {
	ControlAddr string // "127.0.0.1:port"
	ControlPort int
	DataDir     string
	CookieFile  string // empty unless AuthCookie

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

// Binary returns tor's path. Without tor the test is skipped, unless CI is set: then a
// missing tor is a failure, so a broken CI install never passes as green.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("tor")
	if err == nil {
		return path
	}
	for _, p := range []string{"/usr/sbin/tor", "/usr/bin/tor"} {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("tortest: tor not found (CI is set; .ci/run installs Debian's tor): %v", err)
	}
	t.Skipf("tortest: tor not found (apt-get install tor; under CI this is a failure): %v", err)
	return ""
}

// Start runs tor in a temp dir and stops it (by pid) when the test ends, pass or fail.
func Start(t testing.TB, opts Options) *Tor {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	tr := &Tor{DataDir: filepath.Join(dir, "data"), done: make(chan struct{})}
	if err := os.Mkdir(tr.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	portFile := filepath.Join(dir, "control-port")
	control := "127.0.0.1:auto"
	if opts.ControlPort != 0 {
		control = "127.0.0.1:" + strconv.Itoa(opts.ControlPort)
	}
	rc := []string{
		"DataDirectory " + tr.DataDir,
		// Never contact the Tor network: no traffic leaves loopback.
		"DisableNetwork 1",
		"SocksPort 0",
		"ControlPort " + control,
		"ControlPortWriteToFile " + portFile,
		"Log notice stdout",
		"AvoidDiskWrites 1",
		"GeoIPFile " + filepath.Join(dir, "no-geoip"), // skips a slow parse at start
		"GeoIPv6File " + filepath.Join(dir, "no-geoip6"),
	}
	switch opts.Auth {
	case AuthCookie:
		tr.CookieFile = filepath.Join(dir, "control_auth_cookie")
		rc = append(rc, "CookieAuthentication 1", "CookieAuthFile "+tr.CookieFile)
	case AuthNone:
		rc = append(rc, "CookieAuthentication 0")
	case AuthPassword:
		rc = append(rc, "CookieAuthentication 0", "HashedControlPassword "+hashPassword(t, bin, opts.Password))
	}
	torrc := filepath.Join(dir, "torrc")
	defaults := filepath.Join(dir, "torrc-defaults")
	if err := os.WriteFile(torrc, []byte(strings.Join(rc, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(defaults, nil, 0o600); err != nil { // not /etc/tor's
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", torrc, "--defaults-torrc", defaults)
	cmd.Stdout = &lockedWriter{&tr.mu, &tr.log}
	cmd.Stderr = cmd.Stdout
	btcdtest.DieWithParent(cmd, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		t.Fatalf("tortest: start tor: %v", err)
	}
	tr.cmd = cmd
	go func() { cmd.Wait(); close(tr.done) }()
	t.Cleanup(func() {
		tr.Stop()
		if t.Failed() {
			t.Logf("tor log:\n%s", tr.Log())
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(portFile); err == nil {
			if addr, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "PORT="); ok {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					tr.ControlAddr = addr
					_, p, _ := net.SplitHostPort(addr)
					tr.ControlPort, _ = strconv.Atoi(p)
					return tr
				}
			}
		}
		select {
		case <-tr.done:
			t.Fatalf("tortest: tor exited at start\n%s", tr.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tortest: tor's control port not ready\n%s", tr.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hashPassword runs tor --hash-password, which prints the torrc form on its last line.
func hashPassword(t testing.TB, bin, pw string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--quiet", "--hash-password", pw).Output()
	if err != nil {
		t.Fatalf("tortest: tor --hash-password: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	hash := ""
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "16:") {
			hash = l
		}
	}
	if hash == "" {
		t.Fatalf("tortest: no hash in tor --hash-password output %q", out)
	}
	return hash
}

// Stop ends tor (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (tr *Tor) Stop() {
	select {
	case <-tr.done:
		return
	default:
	}
	_ = tr.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-tr.done:
	case <-time.After(10 * time.Second):
		_ = tr.cmd.Process.Kill()
		<-tr.done
	}
}

// Log is tor's output so far.
func (tr *Tor) Log() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// String describes the instance for test logs.
func (tr *Tor) String() string { return fmt.Sprintf("tor(control %s)", tr.ControlAddr) }
