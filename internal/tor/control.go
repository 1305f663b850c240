package tor

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The control protocol (tor's control-spec.txt): a command is one CRLF-terminated line; a
// reply is lines "NNN-text" (more follow), "NNN+text" (a data block ending with "." follows)
// and a final "NNN text". 650 replies are asynchronous events.

const (
	maxLineBytes  = 64 << 10
	maxReplyBytes = 1 << 20
	// DefaultTimeout bounds one command's round trip, so a port that accepts and never
	// answers cannot hang teosd.
	DefaultTimeout = 30 * time.Second
)

var (
	// ErrNotTor means the peer does not speak the control protocol (a wrong control port).
	ErrNotTor = errors.New("not a Tor control port")
	// ErrAuth means tor refused authentication or offers no method teosd can use.
	ErrAuth = errors.New("Tor control port authentication failed")
	// ErrNoAnswer means a command got no reply in time: a hung tor as much as a wrong port.
	ErrNoAnswer = errors.New("no answer from the Tor control port")
)

// ReplyError is a reply with a status code of 400 or more.
type ReplyError struct {
	Code int
	Text string
}

func (e *ReplyError) Error() string { return fmt.Sprintf("tor replied %d %s", e.Code, e.Text) }

// Reply is one reply: its status code and the text of each line (a data block's lines are
// joined with "\n" into the line that announced it).
type Reply struct {
	Code  int
	Lines []string
}

// Conn is a control-port connection. Commands are sent one at a time.
type Conn struct {
	nc      net.Conn
	Timeout time.Duration

	cmdMu   sync.Mutex
	replies chan Reply
	quit    chan struct{} // closed by Close
	quitOne sync.Once
	done    chan struct{}
	err     error // why the reader stopped; read after done is closed
}

// Dial connects to a control port (tor listens on loopback; teosd always dials 127.0.0.1).
func Dial(ctx context.Context, addr string) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the Tor control port: %w", err)
	}
	return newConn(nc), nil
}

func newConn(nc net.Conn) *Conn {
	c := &Conn{nc: nc, Timeout: DefaultTimeout, replies: make(chan Reply, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	go c.readLoop()
	return c
}

// Close closes the connection; tor then removes the onion services it added.
func (c *Conn) Close() error {
	c.quitOne.Do(func() { close(c.quit) })
	err := c.nc.Close()
	<-c.done
	return err
}

// Done is closed when the connection is lost or closed; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, once Done is closed.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

func (c *Conn) readLoop() {
	r := bufio.NewReaderSize(c.nc, maxLineBytes)
	for {
		rep, err := readReply(r)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				err = errors.New("connection closed")
			} else if errors.Is(err, io.EOF) {
				err = errors.New("tor closed the control connection")
			}
			c.err = err
			close(c.done)
			return
		}
		if rep.Code == 650 {
			continue // an event; teosd subscribes to none, but tor may send some
		}
		select {
		case c.replies <- rep:
		case <-c.quit: // a reply nobody waits for: the connection is being closed
			c.err = errors.New("connection closed")
			close(c.done)
			return
		}
	}
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: reply line longer than %d bytes", ErrNotTor, maxLineBytes)
	}
	if err != nil {
		if len(line) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// readReply reads one complete reply.
func readReply(r *bufio.Reader) (Reply, error) {
	var rep Reply
	total := 0
	for {
		line, err := readLine(r)
		if err != nil {
			return rep, err
		}
		total += len(line) + 2 // the line break too, so endless empty lines are bounded
		if len(line) < 4 || !isCode(line[:3]) || !strings.ContainsRune("- +", rune(line[3])) {
			return rep, fmt.Errorf("%w: unexpected reply %q", ErrNotTor, clip(line))
		}
		code, _ := strconv.Atoi(line[:3])
		if rep.Lines != nil && code != rep.Code {
			return rep, fmt.Errorf("%w: status code changed within a reply (%d, %d)", ErrNotTor, rep.Code, code)
		}
		rep.Code = code
		text := line[4:]
		if line[3] == '+' {
			var data []string
			for {
				d, err := readLine(r)
				if err != nil {
					return rep, err
				}
				total += len(d) + 2
				if total > maxReplyBytes {
					return rep, fmt.Errorf("%w: reply longer than %d bytes", ErrNotTor, maxReplyBytes)
				}
				if d == "." {
					break
				}
				data = append(data, strings.TrimPrefix(d, "."))
			}
			text += strings.Join(data, "\n")
		}
		if total > maxReplyBytes {
			return rep, fmt.Errorf("%w: reply longer than %d bytes", ErrNotTor, maxReplyBytes)
		}
		rep.Lines = append(rep.Lines, text)
		if line[3] == ' ' {
			return rep, nil
		}
	}
}

func isCode(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// clip keeps a peer's text short and printable for a one-line error.
func clip(s string) string {
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// Do sends one command line and returns tor's reply; a status of 400 or more is a *ReplyError.
func (c *Conn) Do(cmd string) (Reply, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return Reply{}, errors.New("control command contains a line break")
	}
	c.cmdMu.Lock()
	defer c.cmdMu.Unlock()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c.nc, cmd+"\r\n"); err != nil {
		return Reply{}, fmt.Errorf("send %s: %w", verb(cmd), err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	answer := func(rep Reply) (Reply, error) {
		if rep.Code >= 400 {
			return rep, &ReplyError{Code: rep.Code, Text: strings.Join(rep.Lines, "; ")}
		}
		return rep, nil
	}
	select {
	case rep := <-c.replies:
		return answer(rep)
	case <-c.done:
		// tor may answer and then hang up (a refused AUTHENTICATE): the answer comes first.
		select {
		case rep := <-c.replies:
			return answer(rep)
		default:
		}
		return Reply{}, fmt.Errorf("%s: %w", verb(cmd), c.err)
	case <-t.C:
		c.nc.Close() // a late reply would answer the next command
		return Reply{}, fmt.Errorf("%w to %s within %s", ErrNoAnswer, verb(cmd), timeout)
	}
}

func verb(cmd string) string {
	v, _, _ := strings.Cut(cmd, " ")
	return v
}

// ProtocolInfo is tor's answer to PROTOCOLINFO.
type ProtocolInfo struct {
	Methods    []string // NULL, HASHEDPASSWORD, COOKIE, SAFECOOKIE
	CookieFile string
	Version    string
}

// ProtocolInfo asks which authentication methods tor accepts (allowed before authenticating).
func (c *Conn) ProtocolInfo() (ProtocolInfo, error) {
	var pi ProtocolInfo
	rep, err := c.Do("PROTOCOLINFO 1")
	if err != nil {
		return pi, err
	}
	sawAuth := false
	for _, l := range rep.Lines {
		kw, rest, _ := strings.Cut(l, " ")
		switch kw {
		case "AUTH":
			sawAuth = true
			kv, err := parseKeyValues(rest)
			if err != nil {
				return pi, fmt.Errorf("%w: PROTOCOLINFO AUTH line %q: %w", ErrNotTor, clip(l), err)
			}
			if m := kv["METHODS"]; m != "" {
				pi.Methods = strings.Split(m, ",")
			}
			pi.CookieFile = kv["COOKIEFILE"]
		case "VERSION":
			if kv, err := parseKeyValues(rest); err == nil {
				pi.Version = kv["Tor"]
			}
		}
	}
	if !sawAuth {
		return pi, fmt.Errorf("%w: PROTOCOLINFO has no AUTH line", ErrNotTor)
	}
	return pi, nil
}

// parseKeyValues parses `K=V K="quoted \"V\""` pairs. Quoted values use C escapes, as tor
// writes them (\n, \t, \\, \", and octal \ooo for bytes outside printable ASCII).
func parseKeyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.Contains(k, " ") {
			return nil, fmt.Errorf("bad key=value at %q", clip(s))
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
					i += unescape(&b, rest[i:]) - 1
					continue
				}
				b.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return nil, fmt.Errorf("unterminated quoted value for %s", k)
			}
			v, s = b.String(), rest[i+1:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		out[k] = v
	}
	return out, nil
}

// unescape writes the byte the escape sequence at the start of s (after its backslash)
// stands for, and returns the sequence's length.
func unescape(b *strings.Builder, s string) int {
	switch s[0] {
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case '0', '1', '2', '3', '4', '5', '6', '7':
		n, v := 0, 0
		for ; n < 3 && n < len(s) && s[n] >= '0' && s[n] <= '7'; n++ {
			v = v*8 + int(s[n]-'0')
		}
		b.WriteByte(byte(v))
		return n
	default: // \\, \", \' and anything else: the character itself
		b.WriteByte(s[0])
	}
	return 1
}

// Auth methods, as PROTOCOLINFO names them.
const (
	AuthNull       = "NULL"
	AuthSafeCookie = "SAFECOOKIE"
	AuthCookie     = "COOKIE"
	AuthPassword   = "HASHEDPASSWORD"
)

// Authenticate picks the first of none and safe cookie that tor offers and authenticates
// with it. Plain cookie (which rust-teos also takes) is never picked: the peer names the
// file, so whoever holds the port before tor could have teosd send it any 32-byte file
// (a Lightning node's hsm_secret). Every tor since 0.2.3 offers SAFECOOKIE with COOKIE.
func (c *Conn) Authenticate(pi ProtocolInfo) error {
	for _, m := range []string{AuthNull, AuthSafeCookie} {
		if slices.Contains(pi.Methods, m) {
			return c.AuthenticateWith(m, pi)
		}
	}
	return fmt.Errorf("%w: tor offers %s; teosd can use none of them (it needs safe cookie or no authentication: set CookieAuthentication 1 in torrc)",
		ErrAuth, strings.Join(pi.Methods, ", "))
}

// AuthenticateWith authenticates with the given method. AuthCookie sends the file tor
// named: use it only with a peer known to be tor.
func (c *Conn) AuthenticateWith(method string, pi ProtocolInfo) error {
	var cmd string
	switch method {
	case AuthNull:
		cmd = "AUTHENTICATE"
	case AuthCookie, AuthSafeCookie:
		cookie, err := readCookie(pi.CookieFile)
		if err != nil {
			return err
		}
		if method == AuthCookie {
			cmd = "AUTHENTICATE " + hex.EncodeToString(cookie)
			break
		}
		proof, err := c.safeCookieProof(cookie)
		if err != nil {
			return err
		}
		cmd = "AUTHENTICATE " + hex.EncodeToString(proof)
	default:
		return fmt.Errorf("%w: method %s not supported", ErrAuth, method)
	}
	if _, err := c.Do(cmd); err != nil {
		var re *ReplyError
		if errors.As(err, &re) {
			return fmt.Errorf("%w (%s): %s", ErrAuth, strings.ToLower(method), re.Text)
		}
		return err
	}
	return nil
}

func readCookie(path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: tor named no cookie file", ErrAuth)
	}
	// The peer names the file: a FIFO would block the open for good (and Publish with it), a
	// device may act on being opened. Checked before the open, and again on what was opened.
	notRegular := fmt.Errorf("%w: auth cookie %s is not a regular file", ErrAuth, path)
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: cannot read the auth cookie: %w", ErrAuth, err)
	} else if !fi.Mode().IsRegular() {
		return nil, notRegular
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read the auth cookie: %w", ErrAuth, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, notRegular
	}
	cookie, err := io.ReadAll(io.LimitReader(f, 33))
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read the auth cookie: %w", ErrAuth, err)
	}
	if len(cookie) != 32 {
		return nil, fmt.Errorf("%w: auth cookie %s is not 32 bytes", ErrAuth, path)
	}
	return cookie, nil
}

const (
	safeCookieServerKey = "Tor safe cookie authentication server-to-controller hash"
	safeCookieClientKey = "Tor safe cookie authentication controller-to-server hash"
)

// safeCookieProof runs AUTHCHALLENGE: tor proves it knows the cookie before we prove it.
func (c *Conn) safeCookieProof(cookie []byte) ([]byte, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	rep, err := c.Do("AUTHCHALLENGE SAFECOOKIE " + hex.EncodeToString(nonce))
	if err != nil {
		var re *ReplyError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%w (safecookie): %s", ErrAuth, re.Text)
		}
		return nil, err
	}
	rest, ok := strings.CutPrefix(rep.Lines[0], "AUTHCHALLENGE ")
	if !ok {
		return nil, fmt.Errorf("%w: unexpected AUTHCHALLENGE reply %q", ErrNotTor, clip(rep.Lines[0]))
	}
	kv, err := parseKeyValues(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: AUTHCHALLENGE reply: %w", ErrNotTor, err)
	}
	serverHash, err1 := hex.DecodeString(kv["SERVERHASH"])
	serverNonce, err2 := hex.DecodeString(kv["SERVERNONCE"])
	if err1 != nil || err2 != nil || len(serverHash) != sha256.Size || len(serverNonce) != 32 {
		return nil, fmt.Errorf("%w: malformed AUTHCHALLENGE reply", ErrNotTor)
	}
	msg := slices.Concat(cookie, nonce, serverNonce)
	if !hmac.Equal(serverHash, mac(safeCookieServerKey, msg)) {
		return nil, fmt.Errorf("%w: tor's SERVERHASH does not match the cookie file (another process on the control port?)", ErrAuth)
	}
	return mac(safeCookieClientKey, msg), nil
}

func mac(key string, msg []byte) []byte {
	h := hmac.New(sha256.New, []byte(key))
	h.Write(msg)
	return h.Sum(nil)
}

// AddOnion publishes an onion service with key, forwarding virtPort to target ("host:port"),
// and returns its service id. It lasts as long as this connection (not detached).
func (c *Conn) AddOnion(key SecretKey, virtPort uint16, target string) (string, error) {
	rep, err := c.Do(fmt.Sprintf("ADD_ONION ED25519-V3:%s Port=%d,%s",
		base64.StdEncoding.EncodeToString(key[:]), virtPort, target))
	if err != nil {
		return "", err
	}
	for _, l := range rep.Lines {
		if id, ok := strings.CutPrefix(l, "ServiceID="); ok {
			return id, nil
		}
	}
	return "", fmt.Errorf("%w: ADD_ONION reply has no ServiceID", ErrNotTor)
}

// DelOnion removes an onion service this connection added.
func (c *Conn) DelOnion(serviceID string) error {
	_, err := c.Do("DEL_ONION " + serviceID)
	return err
}

// GetInfo returns the value of one GETINFO key.
func (c *Conn) GetInfo(key string) (string, error) {
	rep, err := c.Do("GETINFO " + key)
	if err != nil {
		return "", err
	}
	for _, l := range rep.Lines {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: GETINFO reply has no %s", ErrNotTor, key)
}
