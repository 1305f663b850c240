package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha3"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/teos-go/teos/internal/socks5test"
	"github.com/teos-go/teos/internal/tor"
	"github.com/teos-go/teos/internal/tortest"
)

// Every tor here is Debian's, started by internal/tortest with DisableNetwork 1 and no SOCKS
// port: only its control port on loopback is used. ADD_ONION works without the Tor network.

// onionFromSeed derives a v3 onion address from an ED25519 seed with the standard library
// alone: base32(pubkey || SHA3-256(".onion checksum" || pubkey || 3)[:2] || 3).
func onionFromSeed(seed []byte) string {
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	sum := sha3.Sum256(append(append([]byte(".onion checksum"), pub...), 3))
	raw := append(append(append([]byte{}, pub...), sum[:2]...), 3)
	return strings.ToLower(base32.StdEncoding.EncodeToString(raw)) + ".onion"
}

// rustTeosOnionKey is internal/tor/testdata/onion_v3_sk, a key file in rust-teos's format,
// and the address of its seed.
func rustTeosOnionKey(t *testing.T) ([]byte, string) {
	t.Helper()
	file, err := os.ReadFile("../internal/tor/testdata/onion_v3_sk")
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.ReadFile("../internal/tor/testdata/onion_v3_sk.seed")
	if err != nil {
		t.Fatal(err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(s)))
	if err != nil {
		t.Fatal(err)
	}
	return file, onionFromSeed(seed)
}

func (tw *tower) keyPath() string { return filepath.Join(tw.dataDir, "regtest", tor.KeyFileName) }

func (tw *tower) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(tw.logs(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in teosd's log:\n%s", s, tw.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// torConn is an authenticated control connection of the test's own.
func torConn(t *testing.T, tr *tortest.Tor) *tor.Conn {
	t.Helper()
	c, err := tor.Dial(context.Background(), tr.ControlAddr)
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

// torHasService reports whether tor already publishes key's service (for another
// controller): adding the same key then fails with 550. Otherwise it returns the service id
// tor derives from the key itself, and removes that probe again.
func torHasService(t *testing.T, tr *tortest.Tor, keyFile []byte) (bool, string) {
	t.Helper()
	key, err := tor.ParseKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c := torConn(t, tr)
	defer c.Close()
	id, err := c.AddOnion(key, 1, "127.0.0.1:1")
	var re *tor.ReplyError
	if errors.As(err, &re) && re.Code == 550 {
		return true, ""
	}
	if err != nil {
		t.Fatalf("ADD_ONION: %v", err)
	}
	if err := c.DelOnion(id); err != nil {
		t.Fatal(err)
	}
	return false, id + ".onion"
}

// TestTorOnionService: an imported rust-teos onion key keeps its address; teosd publishes it
// through tor, lists it in get_tower_info, keeps it across restarts and removes it on
// shutdown. A client reaches the tower at that address through a SOCKS5 proxy.
func TestTorOnionService(t *testing.T) {
	tr := tortest.Start(t, tortest.Options{Auth: tortest.AuthCookie})
	node := startNode(t)
	tw := newTower(t, node, "")
	keyFile, want := rustTeosOnionKey(t)
	if err := os.MkdirAll(filepath.Dir(tw.keyPath()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tw.keyPath(), keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	const onionPort = 19814
	torArgs := []string{"--torsupport", "--torcontrolport", strconv.Itoa(tr.ControlPort),
		"--onionhiddenserviceport", strconv.Itoa(onionPort)}
	line := "Onion service: " + want + ":" + strconv.Itoa(onionPort)

	tw.start(torArgs...)
	tw.waitLog(t, line)
	var info cliTowerInfo
	tw.cliOK(t, &info, "gettowerinfo")
	if len(info.Addresses) != 2 || info.Addresses[0].Type != "ipv4" ||
		info.Addresses[1].Type != "torv3" || info.Addresses[1].Address != want || info.Addresses[1].Port != onionPort {
		t.Fatalf("get_tower_info addresses %+v, want ipv4 then torv3 %s:%d", info.Addresses, want, onionPort)
	}
	if up, _ := torHasService(t, tr, keyFile); !up {
		t.Fatal("tor does not publish the service teosd logged")
	}

	// The client side: teos-client through a SOCKS5 proxy that, like tor, connects the onion
	// name to the service's target (here the API directly; there is no Tor network).
	proxy := socks5test.Start(t, socks5test.Map(want, onionPort, strings.TrimPrefix(tw.apiURL, "http://")))
	alice := newClientCLI(t, tw)
	alice.url = "http://" + want + ":" + strconv.Itoa(onionPort)
	reg := alice.run("--towerid", tw.id.String(), "--proxy", proxy.Addr, "register")
	if reg["tower_id"] != tw.id.String() {
		t.Fatalf("register through the proxy: %v", reg)
	}
	if reqs := proxy.Requests(); len(reqs) != 1 || reqs[0].AddrType != 3 || reqs[0].Host != want {
		t.Fatalf("proxy saw %+v, want the onion name unresolved", reqs)
	}
	// Later commands go through the proxy register saved with the tower, without --proxy.
	if sub := alice.run("get_subscription_info"); sub["available_slots"] == nil {
		t.Fatalf("get_subscription_info through the saved proxy: %v", sub)
	}
	if reqs := proxy.Requests(); len(reqs) != 2 || reqs[1].Host != want {
		t.Fatalf("proxy saw %+v, want a second CONNECT to the onion name", reqs)
	}

	tw.stop()
	tw.waitLog(t, "Onion service removed: "+want)
	up, torSays := torHasService(t, tr, keyFile)
	if up {
		t.Fatal("onion service still published after teosd stopped")
	}
	if torSays != want {
		t.Fatalf("tor derives %s from onion_v3_sk, teosd said %s", torSays, want)
	}

	tw.start(torArgs...)
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(tw.logs(), line) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not republished with the same address after a restart:\n%s", tw.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	tw.stop()
	if after, _ := os.ReadFile(tw.keyPath()); !bytes.Equal(after, keyFile) {
		t.Fatal("onion_v3_sk changed")
	}
}

// TestTorNewKey: without onion_v3_sk teosd makes one (64 bytes, rust-teos's format), and the
// address it reports is the one tor derives from that file.
func TestTorNewKey(t *testing.T) {
	tr := tortest.Start(t, tortest.Options{Auth: tortest.AuthNone})
	node := startNode(t)
	tw := newTower(t, node, "tor_support = true\ntor_control_port = "+strconv.Itoa(tr.ControlPort)+"\n")
	tw.start()
	tw.waitLog(t, "Onion service: ")
	keyFile, err := os.ReadFile(tw.keyPath())
	if err != nil || len(keyFile) != tor.KeySize {
		t.Fatalf("onion_v3_sk: %d bytes, %v", len(keyFile), err)
	}
	var info cliTowerInfo
	tw.cliOK(t, &info, "gettowerinfo")
	if len(info.Addresses) != 2 || info.Addresses[1].Port != 9814 {
		t.Fatalf("addresses %+v, want the onion on the default port 9814", info.Addresses)
	}
	addr := info.Addresses[1].Address
	if !strings.Contains(tw.logs(), "Onion service: "+addr+":9814") {
		t.Fatalf("get_tower_info says %s, the log says otherwise:\n%s", addr, tw.logs())
	}
	tw.stop()
	if _, torSays := torHasService(t, tr, keyFile); torSays != addr {
		t.Fatalf("tor derives %s from the generated key, teosd reports %s", torSays, addr)
	}
}

// TestTorRefusals: when tor cannot be used teosd says why in one line and serves clearnet;
// a bad key file stops it before anything is written.
func TestTorRefusals(t *testing.T) {
	node := startNode(t)
	user := newUser(t)

	t.Run("tor down, then up", func(t *testing.T) {
		port := freePort(t)
		tw := newTower(t, node, "")
		tw.start("--torsupport", "--torcontrolport", strconv.Itoa(port))
		tw.waitLog(t, "cannot connect to the Tor control port")
		oneTorLine(t, tw, "cannot connect to the Tor control port")
		user.register(t, tw) // clearnet works
		// teosd keeps trying; once tor listens there the service is published.
		tortest.Start(t, tortest.Options{ControlPort: port})
		tw.waitLog(t, "Onion service: ")
		tw.stop()
	})

	t.Run("not a control port", func(t *testing.T) {
		tw := newTower(t, node, "")
		apiPort := tw.apiURL[strings.LastIndex(tw.apiURL, ":")+1:]
		tw.start("--torsupport", "--torcontrolport", apiPort) // its own HTTP API
		tw.waitLog(t, "not a Tor control port")
		oneTorLine(t, tw, "not a Tor control port")
		user.register(t, tw)
		tw.stop()
	})

	t.Run("password-only tor", func(t *testing.T) {
		tr := tortest.Start(t, tortest.Options{Auth: tortest.AuthPassword, Password: "secret"})
		tw := newTower(t, node, "")
		tw.start("--torsupport", "--torcontrolport", strconv.Itoa(tr.ControlPort))
		tw.waitLog(t, "authentication failed")
		oneTorLine(t, tw, "authentication failed")
		user.register(t, tw)
		tw.stop()
	})

	for name, content := range map[string][]byte{
		"key file too short":       []byte("random stuff"),
		"key file not clamped":     bytes.Repeat([]byte{0xff}, tor.KeySize),
		"key file in tor's format": append([]byte("== ed25519v1-secret: type0 ==\x00\x00\x00"), make([]byte, 64)...),
	} {
		t.Run(name, func(t *testing.T) {
			tw := newTower(t, node, "")
			if err := os.MkdirAll(filepath.Dir(tw.keyPath()), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(tw.keyPath(), content, 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := runToExit(t, append(append([]string{}, tw.args...), "--torsupport", "--torcontrolport", strconv.Itoa(freePort(t)))...)
			if code != 1 || !strings.Contains(out, "not a Tor v3 onion key") || !strings.Contains(out, tw.keyPath()) {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if n := strings.Count(out, "level=ERROR"); n != 1 || strings.Contains(out, "panic") {
				t.Fatalf("want one error line:\n%s", out)
			}
			if after, _ := os.ReadFile(tw.keyPath()); !bytes.Equal(after, content) {
				t.Fatal("bad key file was replaced")
			}
			if _, err := os.Stat(filepath.Join(tw.dataDir, "regtest", "teos.db")); !os.IsNotExist(err) {
				t.Fatalf("teos.db written before the key was checked: %v", err)
			}
		})
	}
}

// oneTorLine checks the reason is logged on exactly one line, however often teosd retried.
func oneTorLine(t *testing.T, tw *tower, reason string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(tw.logs(), "\n") {
		if strings.Contains(l, reason) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "serving clearnet only") {
		t.Fatalf("want one warning line about %q:\n%s", reason, tw.logs())
	}
}

// fakeControlPort is a scripted tor control port (no authentication) that records the
// commands it gets: it shows what teosd asks tor to do, which tor does not tell another
// controller (the forwarding target).
func fakeControlPort(t *testing.T) (string, <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cmds := make(chan string, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					cmd := strings.TrimRight(line, "\r\n")
					cmds <- cmd
					reply := "250 OK\r\n"
					switch verb, rest, _ := strings.Cut(cmd, " "); verb {
					case "PROTOCOLINFO":
						reply = "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n"
					case "ADD_ONION":
						blob, _, _ := strings.Cut(strings.TrimPrefix(rest, "ED25519-V3:"), " ")
						raw, _ := base64.StdEncoding.DecodeString(blob)
						key, err := tor.ParseKey(raw)
						if err != nil {
							reply = "513 Invalid key blob\r\n"
							break
						}
						reply = "250-ServiceID=" + key.ServiceID() + "\r\n250 OK\r\n"
					}
					if _, err := c.Write([]byte(reply)); err != nil {
						return
					}
				}
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, cmds
}

// TestTorCommands: teosd hands tor onion_v3_sk's bytes as they are, forwards the onion port to
// the onion clients' own API listener on loopback (which answers), and deletes the service by its id on shutdown.
func TestTorCommands(t *testing.T) {
	port, cmds := fakeControlPort(t)
	node := startNode(t)
	tw := newTower(t, node, "")
	keyFile, want := rustTeosOnionKey(t)
	if err := os.MkdirAll(filepath.Dir(tw.keyPath()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tw.keyPath(), keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	tw.start("--torsupport", "--torcontrolport", port, "--onionhiddenserviceport", "19814")
	tw.waitLog(t, "Onion service: "+want+":19814")
	// The target is the onion clients' own listener on loopback, not the public API's.
	m := regexp.MustCompile(`onion service target.* addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(tw.logs())
	if m == nil {
		t.Fatalf("no onion service target in teosd's log:\n%s", tw.logs())
	}
	target := m[1]
	apiHostPort := strings.TrimPrefix(tw.apiURL, "http://")
	if target == apiHostPort {
		t.Fatalf("onion target %s is the public API's listener", target)
	}
	if resp, err := http.Get("http://" + target + "/ping"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ping on the onion target %s: %v %v", target, resp, err)
	} else {
		resp.Body.Close()
	}
	tw.stop()
	var got []string
	for len(cmds) > 0 {
		got = append(got, <-cmds)
	}
	wantCmds := []string{
		"PROTOCOLINFO 1",
		"AUTHENTICATE",
		"ADD_ONION ED25519-V3:" + base64.StdEncoding.EncodeToString(keyFile) + " Port=19814," + target,
		"DEL_ONION " + strings.TrimSuffix(want, ".onion"),
	}
	if strings.Join(got, "\n") != strings.Join(wantCmds, "\n") {
		t.Fatalf("teosd sent:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantCmds, "\n"))
	}
}

// TestTorPrivateNetworkRoundTrip: a real onion round trip, on a private Tor network on
// 127.0.0.1 (tortest.StartPrivateNetwork: its own directory authority, nothing reaches the
// public Tor network). teosd publishes its API through the network's client tor; teos-client
// registers and sends an appointment over the onion address through that tor's SOCKS port.
func TestTorPrivateNetworkRoundTrip(t *testing.T) {
	t0 := time.Now()
	pn := tortest.StartPrivateNetwork(t)
	t.Logf("private Tor network bootstrapped in %v", time.Since(t0).Round(time.Second))
	node := startNode(t)
	tw := newTower(t, node, "api_max_connections_per_address = 2\n")
	tw.start("--torsupport", "--torcontrolport", strconv.Itoa(pn.Client.ControlPort))
	tw.waitLog(t, "Onion service: ")
	var info cliTowerInfo
	tw.cliOK(t, &info, "gettowerinfo")
	if len(info.Addresses) != 2 || info.Addresses[1].Type != "torv3" {
		t.Fatalf("addresses %+v", info.Addresses)
	}
	onionURL := "http://" + info.Addresses[1].Address + ":" + strconv.Itoa(int(info.Addresses[1].Port))

	bin, err := teosClientBin()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "client")
	client := func(args ...string) (string, string, error) {
		// Requests time out after 30 s, so an attempt made while the young network cannot yet
		// build circuits (its relays enter the consensus a few voting rounds after start, later
		// on a loaded machine) ends and the loop below tries again, rather than one attempt
		// retrying inside teos-client past the whole deadline. The kill is a last resort.
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--datadir", dataDir, "--tower", onionURL,
			"--towerid", tw.id.String(), "--proxy", pn.SocksAddr, "--timeout", "30s"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	// The descriptor reaches the network's HSDirs some seconds after ADD_ONION.
	t1 := time.Now()
	deadline := time.Now().Add(6 * time.Minute)
	for attempt := 1; ; attempt++ {
		out, errOut, err := client("register")
		if err == nil {
			if !strings.Contains(out, tw.id.String()) {
				t.Fatalf("register over the onion printed %s", out)
			}
			t.Logf("registered over the onion %v after teosd published it (attempt %d)", time.Since(t1).Round(time.Second), attempt)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("register over the onion: %v\n%s", err, errOut)
		}
		time.Sleep(2 * time.Second)
	}
	b := node.NewBreach(t)
	out, errOut, err := client("add_appointment", "--commitment-txid", b.Commitment.TxHash().String(),
		"--penalty", hex.EncodeToString(txBytes(t, b.Penalty)))
	if err != nil || !strings.Contains(out, locatorOf(b).String()) {
		t.Fatalf("add_appointment over the onion: %v\n%s%s", err, out, errOut)
	}
	// More onion connections than the per-address cap (2), all open at once, each answering
	// twice: tor connects every one from 127.0.0.1, but onion clients have their own
	// listener, with no per-address cap. The same on the public port from 127.0.0.1 is
	// capped as before: connections past the cap wait parked, idle ones are closed for them.
	socks, err := proxy.SOCKS5("tcp", pn.SocksAddr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	onionAddr := info.Addresses[1].Address + ":" + strconv.Itoa(int(info.Addresses[1].Port))
	if ok := pingRounds(t, socks.Dial, onionAddr, n); ok != 2*n {
		t.Fatalf("%d of %d pings over %d onion connections at once answered, want all", ok, 2*n, n)
	}
	ok := pingRounds(t, net.Dial, strings.TrimPrefix(tw.apiURL, "http://"), n)
	if ok == 2*n {
		t.Fatalf("all %d pings over %d connections at once from 127.0.0.1 to the public port answered: its per-address cap of 2 is gone", ok, n)
	}
	t.Logf("%d connections at once, 2 pings each: all answered over the onion, %d of %d on the public port from 127.0.0.1 (cap 2)", n, ok, 2*n)
	// An onion nobody publishes: tor's SOCKS port refuses it, and the client reports a
	// transport failure, not a tower's answer: exit 3, nothing refused.
	_, unknown := rustTeosOnionKey(t)
	onionURL = "http://" + unknown + ":9814"
	dataDir = filepath.Join(t.TempDir(), "client2")
	_, errOut, err = client("register")
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 || !strings.Contains(errOut, "socks connect") || strings.Contains(errOut, "error_code") {
		t.Fatalf("register with an unknown onion: %v\n%s", err, errOut)
	}
	t.Logf("unknown onion: %s", strings.TrimSpace(errOut))
	tw.stop()
	tw.waitLog(t, "Onion service removed: ")
}

// pingRounds opens n connections to addr with dial, then twice sends GET /ping on every one
// before reading the answers, and returns how many answered 200.
func pingRounds(t *testing.T, dial func(network, addr string) (net.Conn, error), addr string, n int) int {
	t.Helper()
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		c, err := dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d to %s: %v", i+1, addr, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Minute)) // a guard against a hang, not a measure
		conns[i], readers[i] = c, bufio.NewReader(c)
	}
	ok := 0
	for range 2 {
		for _, c := range conns {
			_, _ = c.Write([]byte("GET /ping HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"))
		}
		for i := range conns {
			resp, err := http.ReadResponse(readers[i], nil)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok++
			}
		}
	}
	return ok
}
