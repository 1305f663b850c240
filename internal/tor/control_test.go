package tor

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakePeer answers each command line with the reply answer returns (raw, CRLFs included).
func fakePeer(t *testing.T, answer func(cmd string) string) *Conn {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		r := bufio.NewReader(server)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			out := answer(strings.TrimRight(line, "\r\n"))
			if out == "" {
				continue // silent
			}
			if _, err := server.Write([]byte(out)); err != nil {
				return
			}
		}
	}()
	c := newConn(client)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestReplyParsing(t *testing.T) {
	c := fakePeer(t, func(cmd string) string {
		switch cmd {
		case "GETINFO onions/current":
			return "650 STATUS_GENERAL NOTICE X\r\n" + // an event first: skipped
				"250+onions/current=\r\naaa\r\n..dot\r\nbbb\r\n.\r\n250 OK\r\n"
		case "GETINFO version":
			return "250-version=0.4.9.11\r\n250 OK\r\n"
		default:
			return "510 Unrecognized command \"" + cmd + "\"\r\n"
		}
	})
	v, err := c.GetInfo("onions/current")
	if err != nil || v != "aaa\n.dot\nbbb" {
		t.Fatalf("data block: %q, %v", v, err)
	}
	if v, err := c.GetInfo("version"); err != nil || v != "0.4.9.11" {
		t.Fatalf("version: %q, %v", v, err)
	}
	_, err = c.Do("FOO")
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 510 {
		t.Fatalf("err = %v, want a 510 ReplyError", err)
	}
	if _, err := c.Do("A\r\nB"); err == nil {
		t.Fatal("a command with a line break was sent")
	}
}

func TestProtocolInfoQuotedCookie(t *testing.T) {
	c := fakePeer(t, func(string) string {
		return "250-PROTOCOLINFO 1\r\n" +
			`250-AUTH METHODS=COOKIE,SAFECOOKIE,HASHEDPASSWORD COOKIEFILE="/var/run/tor dir/\"c\"\\x"` + "\r\n" +
			"250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n"
	})
	pi, err := c.ProtocolInfo()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pi.Methods, ",") != "COOKIE,SAFECOOKIE,HASHEDPASSWORD" || pi.CookieFile != `/var/run/tor dir/"c"\x` || pi.Version != "0.4.9.11" {
		t.Fatalf("%+v", pi)
	}
}

// A wrong control port: whatever answers there is not tor.
func TestNotTor(t *testing.T) {
	for name, answer := range map[string]string{
		"http":           "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n400 Bad Request",
		"no AUTH line":   "250-PROTOCOLINFO 1\r\n250 OK\r\n",
		"bad separator":  "250*OK\r\n",
		"code changes":   "250-PROTOCOLINFO 1\r\n251 OK\r\n",
		"unquoted value": "250-AUTH METHODS=NULL COOKIEFILE=\"/x\r\n250 OK\r\n",
	} {
		c := fakePeer(t, func(string) string { return answer })
		_, err := c.ProtocolInfo()
		if !errors.Is(err, ErrNotTor) {
			t.Errorf("%s: err = %v, want ErrNotTor", name, err)
		} else if strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("%s: error not one line: %q", name, err)
		}
	}
}

func TestSilentPeerTimesOut(t *testing.T) {
	c := fakePeer(t, func(string) string { return "" })
	c.Timeout = 50 * time.Millisecond
	if _, err := c.ProtocolInfo(); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("err = %v, want ErrNoAnswer", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed after a timeout")
	}
}

func TestLongLine(t *testing.T) {
	c := fakePeer(t, func(string) string { return "250-" + strings.Repeat("x", maxLineBytes) + "\r\n" })
	if _, err := c.Do("GETINFO x"); !errors.Is(err, ErrNotTor) {
		t.Fatalf("err = %v, want ErrNotTor", err)
	}
}

func TestAuthenticateNoUsableMethod(t *testing.T) {
	c := fakePeer(t, func(string) string { return "250 OK\r\n" })
	err := c.Authenticate(ProtocolInfo{Methods: []string{AuthPassword}})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "HASHEDPASSWORD") {
		t.Fatalf("err = %v", err)
	}
}

// SAFECOOKIE: a controller must not prove the cookie to a peer that cannot prove it first.
func TestSafeCookieWrongServerHash(t *testing.T) {
	cookie := filepath.Join(t.TempDir(), "cookie")
	if err := os.WriteFile(cookie, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	sent := make(chan string, 4)
	c := fakePeer(t, func(cmd string) string {
		sent <- cmd
		return "250 AUTHCHALLENGE SERVERHASH=" + strings.Repeat("00", 32) + " SERVERNONCE=" + strings.Repeat("11", 32) + "\r\n"
	})
	err := c.AuthenticateWith(AuthSafeCookie, ProtocolInfo{Methods: []string{AuthSafeCookie}, CookieFile: cookie})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	close(sent)
	for cmd := range sent {
		if strings.HasPrefix(cmd, "AUTHENTICATE") {
			t.Fatalf("sent %q to a peer that failed the challenge", cmd)
		}
	}
}

func TestCookieFileProblems(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := fakePeer(t, func(string) string { return "250 OK\r\n" })
	for name, path := range map[string]string{"none named": "", "missing": filepath.Join(dir, "nope"), "short": short} {
		err := c.AuthenticateWith(AuthCookie, ProtocolInfo{Methods: []string{AuthCookie}, CookieFile: path})
		if !errors.Is(err, ErrAuth) {
			t.Errorf("%s: err = %v, want ErrAuth", name, err)
		}
	}
}

func TestAddOnionCommand(t *testing.T) {
	file, _ := readFixture(t)
	key, _ := ParseKey(file)
	var got string
	c := fakePeer(t, func(cmd string) string {
		got = cmd
		return "250-ServiceID=" + key.ServiceID() + "\r\n250 OK\r\n"
	})
	id, err := c.AddOnion(key, 9814, "127.0.0.1:9815")
	if err != nil || id != key.ServiceID() {
		t.Fatalf("id %q err %v", id, err)
	}
	want := "ADD_ONION ED25519-V3:"
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, " Port=9814,127.0.0.1:9815") {
		t.Fatalf("command %q", got)
	}
}

// tor answers a refused AUTHENTICATE and hangs up at once: the answer must win over the EOF,
// though Do then sees both ready.
func TestAnswerThenHangUp(t *testing.T) {
	for range 100 {
		client, server := net.Pipe()
		go io.Copy(io.Discard, server)
		c := &Conn{nc: client, replies: make(chan Reply, 1), quit: make(chan struct{}), done: make(chan struct{})}
		c.replies <- Reply{Code: 515, Lines: []string{"Authentication failed"}}
		c.err = errors.New("tor closed the control connection")
		close(c.done)
		_, err := c.Do("AUTHENTICATE 00")
		var re *ReplyError
		if !errors.As(err, &re) || re.Code != 515 {
			t.Fatalf("err = %v, want the 515 answer", err)
		}
		c.Close()
		server.Close()
	}
}

// TestProtocolInfoEscapedCookiePath: tor writes COOKIEFILE with C escapes (esc_for_log),
// octal for bytes outside printable ASCII, so a UTF-8 path arrives as \303\251.
func TestProtocolInfoEscapedCookiePath(t *testing.T) {
	c := fakePeer(t, func(string) string {
		return "250-PROTOCOLINFO 1\r\n" +
			`250-AUTH METHODS=COOKIE COOKIEFILE="/home/jos\303\251/tor\tdir/c\\ookie\n"` + "\r\n" +
			"250 OK\r\n"
	})
	pi, err := c.ProtocolInfo()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/home/josé/tor\tdir/c\\ookie\n"; pi.CookieFile != want {
		t.Fatalf("cookie file %q, want %q", pi.CookieFile, want)
	}
}

// TestEndlessEmptyDataLines: a peer that streams empty lines inside a data block is cut off
// at the reply bound rather than growing the reply without end.
func TestEndlessEmptyDataLines(t *testing.T) {
	r := bufio.NewReader(io.MultiReader(strings.NewReader("250+x=\r\n"), endlessCRLF{}))
	_, err := readReply(r)
	if !errors.Is(err, ErrNotTor) {
		t.Fatalf("err = %v, want ErrNotTor (reply too long)", err)
	}
}

type endlessCRLF struct{}

func (endlessCRLF) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = "\r\n"[i%2]
	}
	return len(p) &^ 1, nil
}

// TestCookieOnlyPeerGetsNoFile: whoever listens on the control port names the cookie file.
// A peer that offers only plain COOKIE and names another 32-byte file (a Lightning node's
// hsm_secret) must not be sent its contents: teosd proves a cookie only by SAFECOOKIE,
// after the peer has proved it knows the cookie too.
func TestCookieOnlyPeerGetsNoFile(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "hsm_secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	sent := make(chan string, 8)
	c := fakePeer(t, func(cmd string) string {
		sent <- cmd
		if strings.HasPrefix(cmd, "PROTOCOLINFO") {
			return "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE COOKIEFILE=\"" + secret + "\"\r\n250 OK\r\n"
		}
		return "250 OK\r\n"
	})
	pi, err := c.ProtocolInfo()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Authenticate(pi); !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	close(sent)
	for cmd := range sent {
		if strings.HasPrefix(cmd, "AUTHENTICATE") {
			t.Fatalf("sent %q to a peer offering only plain COOKIE", cmd)
		}
	}
}

// stallingControlPort is a control port (no authentication) that answers everything but
// ADD_ONION, where it does what addOnion says: "silent" (a hung tor) or "hangup".
func stallingControlPort(t *testing.T, addOnion string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
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
					reply := "250 OK\r\n"
					switch verb(strings.TrimSpace(line)) {
					case "PROTOCOLINFO":
						reply = "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250 OK\r\n"
					case "ADD_ONION":
						if addOnion == "hangup" {
							return
						}
						io.Copy(io.Discard, r) // silent until teosd gives up
						return
					}
					if _, err := c.Write([]byte(reply)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// TestPublishTransportFaultsNotRefusals: a tor that authenticated teosd and then does not
// answer ADD_ONION, or drops the connection, has refused nothing and is a control port; the
// warning must not send the operator after a wrong port or a refusal.
func TestPublishTransportFaultsNotRefusals(t *testing.T) {
	for _, mode := range []string{"silent", "hangup"} {
		t.Run(mode, func(t *testing.T) {
			addr := stallingControlPort(t, mode)
			key, _ := GenerateKey()
			var logs logBuf
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				Publish(ctx, ServiceConfig{ControlAddr: addr, Key: key, VirtualPort: 9814, Target: "127.0.0.1:9814",
					// Long enough that only the silent ADD_ONION runs into it, even on a loaded machine.
					Logger: slog.New(slog.NewTextHandler(&logs, nil)), Timeout: 2 * time.Second,
					MinBackoff: time.Hour})
				close(done)
			}()
			defer func() { cancel(); <-done }()
			logs.waitFor(t, "serving clearnet only")
			msg := logs.String()
			if strings.Contains(msg, "refused") || strings.Contains(msg, ErrNotTor.Error()) {
				t.Fatalf("a transport fault on ADD_ONION logged as a refusal or a wrong port:\n%s", msg)
			}
			if want := map[string]string{"silent": "no answer from the Tor control port to ADD_ONION", "hangup": "closed the control connection"}[mode]; !strings.Contains(msg, want) {
				t.Fatalf("warning does not say %q:\n%s", want, msg)
			}
		})
	}
}
