package tortest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/freeport"
)

// PrivateNetwork is a whole Tor network on 127.0.0.1 (TestingTorNetwork): one directory
// authority, three relays, and a client that also hosts onion services. Its tors know only
// its own authority, bind and connect only to 127.0.0.1, and none is an exit, so nothing
// reaches the public Tor network or leaves loopback.
type PrivateNetwork struct {
	Client    *Tor   // control port with cookie authentication
	SocksAddr string // the client's SOCKS port, "127.0.0.1:port"
}

// StartPrivateNetwork starts the network and waits until the client has bootstrapped (about
// half a minute); everything is stopped when the test ends.
func StartPrivateNetwork(t testing.TB) *PrivateNetwork {
	t.Helper()
	bin := Binary(t)
	gencert, err := exec.LookPath("tor-gencert")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("tortest: tor-gencert not found (Debian's tor package has it): %v", err)
		}
		t.Skipf("tortest: tor-gencert not found: %v", err)
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "torrc-defaults")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 10)
	authOR, authDir := ports[0], ports[1]

	nodeDir := func(name string) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(d, "keys"), 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	run := func(wd string, stdin string, name string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Stdin = wd, strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tortest: %s %v: %v\n%s", filepath.Base(name), args, err, out)
		}
	}
	// The relay identity fingerprint, made with a placeholder authority (tor insists on one
	// for a testing network). -f: without it tor reads the host's /etc/tor/torrc.
	fingerprint := func(d string) string {
		t.Helper()
		run(d, "", bin, "-f", empty, "--defaults-torrc", empty, "--list-fingerprint", "--quiet", "--DataDirectory", d, "--ORPort", "1",
			"--DirAuthority", "placeholder 127.0.0.1:1 "+strings.Repeat("f", 40))
		b, err := os.ReadFile(filepath.Join(d, "fingerprint"))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b))
		if len(f) != 2 {
			t.Fatalf("tortest: fingerprint file %q", b)
		}
		return f[1]
	}

	a0 := nodeDir("auth0")
	run(filepath.Join(a0, "keys"), "\n", gencert, "--create-identity-key", "-m", "12",
		"-a", "127.0.0.1:"+strconv.Itoa(authDir), "--passphrase-fd", "0")
	cert, err := os.ReadFile(filepath.Join(a0, "keys", "authority_certificate"))
	if err != nil {
		t.Fatal(err)
	}
	v3ident := ""
	for _, l := range strings.Split(string(cert), "\n") {
		if f, ok := strings.CutPrefix(l, "fingerprint "); ok {
			v3ident = strings.TrimSpace(f)
		}
	}
	if v3ident == "" {
		t.Fatal("tortest: no fingerprint in authority_certificate")
	}
	authFP := fingerprint(a0)
	relays := []string{nodeDir("relay1"), nodeDir("relay2"), nodeDir("relay3")}
	guardFP := fingerprint(relays[0])

	// No DisableNetwork here, unlike every other tor the tests start: these tors must talk to
	// each other. They stay on loopback because the only directory authority is ours on
	// 127.0.0.1 (which replaces the public ones), the default fallback directories are off,
	// every address and outbound bind is 127.0.0.1, and the client may reach nothing else (tor
	// refuses ReachableAddresses on relays).
	common := []string{
		"TestingTorNetwork 1",
		"UseDefaultFallbackDirs 0",
		fmt.Sprintf("DirAuthority auth0 orport=%d no-v2 v3ident=%s 127.0.0.1:%d %s", authOR, v3ident, authDir, authFP),
		"Address 127.0.0.1",
		"OutboundBindAddress 127.0.0.1",
		"AssumeReachable 1",
		"EnforceDistinctSubnets 0", // every relay is on 127.0.0.1
		"ClientUseIPv6 0",
		"ShutdownWaitLength 0",
		"SafeLogging 0",
		"GeoIPFile " + filepath.Join(dir, "no-geoip"),
		"GeoIPv6File " + filepath.Join(dir, "no-geoip6"),
	}
	relay := func(d string, or, dirPort int) []string {
		return append(append([]string{}, common...),
			"DataDirectory "+d, "Nickname "+filepath.Base(d), "ContactInfo test@localhost",
			"ORPort 127.0.0.1:"+strconv.Itoa(or), "DirPort 127.0.0.1:"+strconv.Itoa(dirPort),
			"SocksPort 0", "ExitPolicy reject *:*", "Log notice file "+filepath.Join(d, "log"))
	}
	var started []*Tor
	start := func(name string, rc []string) *Tor {
		t.Helper()
		d := filepath.Join(dir, name)
		torrc := filepath.Join(d, "torrc")
		if err := os.WriteFile(torrc, []byte(strings.Join(rc, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tr := &Tor{DataDir: d, done: make(chan struct{})}
		cmd := exec.Command(bin, "-f", torrc, "--defaults-torrc", empty)
		cmd.Stdout = &lockedWriter{&tr.mu, &tr.log}
		cmd.Stderr = cmd.Stdout
		btcdtest.DieWithParent(cmd, syscall.SIGKILL)
		if err := cmd.Start(); err != nil {
			t.Fatalf("tortest: start %s: %v", name, err)
		}
		tr.cmd = cmd
		go func() { cmd.Wait(); close(tr.done) }()
		started = append(started, tr)
		t.Cleanup(tr.Stop)
		return tr
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, tr := range started {
				log, _ := os.ReadFile(filepath.Join(tr.DataDir, "log"))
				t.Logf("%s:\n%s%s", filepath.Base(tr.DataDir), tr.Log(), tailLines(string(log), 30))
			}
		}
	})

	start("auth0", append(relay(a0, authOR, authDir),
		"AuthoritativeDirectory 1", "V3AuthoritativeDirectory 1",
		"TestingDirAuthVoteHSDir *",
		"TestingDirAuthVoteGuard "+authFP+","+guardFP, // not all: a network of guards has no middles
		"V3AuthVotingInterval 10", "V3AuthVoteDelay 2", "V3AuthDistDelay 2",
		"TestingV3AuthInitialVotingInterval 10", "TestingV3AuthInitialVoteDelay 2", "TestingV3AuthInitialDistDelay 2"))
	for i, d := range relays {
		start(filepath.Base(d), relay(d, ports[2+2*i], ports[3+2*i]))
	}
	cd := nodeDir("client")
	socks, control := ports[8], ports[9]
	client := start("client", append(append([]string{}, common...),
		"DataDirectory "+cd,
		"ReachableAddresses 127.0.0.0/8:*, reject *:*",
		"SocksPort 127.0.0.1:"+strconv.Itoa(socks),
		"ControlPort 127.0.0.1:"+strconv.Itoa(control),
		"CookieAuthentication 1", "CookieAuthFile "+filepath.Join(cd, "control_auth_cookie"),
		"Log notice file "+filepath.Join(cd, "log")))
	client.ControlPort = control
	client.ControlAddr = "127.0.0.1:" + strconv.Itoa(control)
	client.CookieFile = filepath.Join(cd, "control_auth_cookie")

	deadline := time.Now().Add(3 * time.Minute)
	for {
		log, _ := os.ReadFile(filepath.Join(cd, "log"))
		if bytes.Contains(log, []byte("Bootstrapped 100%")) {
			break
		}
		for _, tr := range started {
			select {
			case <-tr.done:
				t.Fatalf("tortest: %s exited", filepath.Base(tr.DataDir))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("tortest: the private network's client did not bootstrap in 3 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return &PrivateNetwork{Client: client, SocksAddr: "127.0.0.1:" + strconv.Itoa(socks)}
}

// freePorts returns n distinct loopback ports that were free a moment ago (internal/freeport).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		p, err := freeport.Get()
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	return ports
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
