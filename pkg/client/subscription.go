package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// DefaultMaxLocators is how many locators GetSubscriptionInfo accepts unless WithMaxLocators
// says otherwise: as many as a teos-go tower sends at most (its answers are bounded at 256 MiB
// as a gRPC message, 18 bytes a locator; docs/PROTOCOL.md §5.5), so no honest answer is
// refused. The answer is decoded as it arrives, never buffered whole: the client holds 16
// bytes per locator, about 230 MiB at this bound, whatever the tower sends.
const DefaultMaxLocators = (256 << 20) / 18

// Wire sizes bounding a get_subscription_info answer: every locator is 32 hex digits in quotes
// and a comma (35 bytes compact); locatorWireAllowance leaves room for a tower that indents
// its JSON. The fixed part (the two numbers, fields a later tower may add) gets
// subscriptionHeadBytes.
const (
	locatorWireAllowance  = 48
	subscriptionHeadBytes = 1 << 20
	maxSkipDepth          = 32
)

// WithMaxLocators bounds how many locators GetSubscriptionInfo accepts (n > 0; the default
// is DefaultMaxLocators): a caller who knows how many appointments it sent can refuse a
// bigger answer early, and hold at most 16·n bytes of it.
func WithMaxLocators(n int) Option {
	return func(t *Tower) {
		if n > 0 {
			t.maxLocators = n
		}
	}
}

// SubscriptionInfo is the answer to get_subscription_info.
type SubscriptionInfo struct {
	AvailableSlots     uint32
	SubscriptionExpiry uint32
	Locators           []teos.Locator
}

type subscriptionRequest struct {
	Signature string `json:"signature"`
}

// GetSubscriptionInfo returns the user's slots, expiry and stored locators. The answer is
// read as it streams in and checked locator by locator: more than the bound of WithMaxLocators
// (or more bytes than that many locators take) fails with ErrResponseTooLarge, anything that
// is not the teos answer with ErrBadResponse, and nothing is returned from a failed read.
func (t *Tower) GetSubscriptionInfo(ctx context.Context) (*SubscriptionInfo, error) {
	req := subscriptionRequest{wtcrypto.SignMessage(teos.GetSubscriptionInfoMessage, t.key)}
	d := &subscriptionDecoder{maxLocators: t.maxLocators}
	if err := t.do(ctx, http.MethodPost, "/get_subscription_info", req, d); err != nil {
		return nil, err
	}
	return d.info, nil
}

// subscriptionDecoder reads a get_subscription_info answer from the body (streamDecoder).
type subscriptionDecoder struct {
	maxLocators int
	info        *SubscriptionInfo // set only once a whole answer decoded
}

// readError is a failure of the transport under the decoder: retried like any other.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// errPastCap marks the byte bound being reached (capReader).
var errPastCap = errors.New("past the byte bound")

// capReader passes through at most left bytes and fails with errPastCap if the body has more.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, err := c.r.Read(one[:]); n > 0 {
			return 0, errPastCap
		} else {
			return 0, err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (d *subscriptionDecoder) decodeStream(body io.Reader, contentLength int64) error {
	maxBytes := int64(subscriptionHeadBytes) + int64(d.maxLocators)*locatorWireAllowance
	p := &subParser{r: bufio.NewReaderSize(&capReader{r: body, left: maxBytes}, 64<<10), maxBytes: maxBytes}
	hint := 0
	if contentLength > 0 { // the transport reads no more than that, so it bounds the count
		hint = int(min(contentLength/35, int64(d.maxLocators)))
	}
	info, err := p.answer(d.maxLocators, hint)
	if err != nil {
		return err
	}
	d.info = info
	return nil
}

// subParser is a strict, streaming reader of one JSON object. It never holds more than one
// locator, one number or one short key of the input; values of fields it does not know are
// checked and skipped as they stream by.
type subParser struct {
	r        *bufio.Reader
	maxBytes int64
}

// fail turns a read failure into the error the caller acts on: the byte bound, a body that
// ended too early (malformed), or the transport (readError, retried).
func (p *subParser) fail(err error) error {
	switch {
	case errors.Is(err, errPastCap):
		return fmt.Errorf("%w: get_subscription_info answer over %d bytes", ErrResponseTooLarge, p.maxBytes)
	case err == io.EOF:
		return fmt.Errorf("%w: get_subscription_info answer ends early", ErrBadResponse)
	default:
		return &readError{err}
	}
}

func (p *subParser) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: get_subscription_info: %s", ErrBadResponse, fmt.Sprintf(format, args...))
}

func (p *subParser) byte() (byte, error) {
	c, err := p.r.ReadByte()
	if err != nil {
		return 0, p.fail(err)
	}
	return c, nil
}

// next returns the next byte that is not JSON whitespace.
func (p *subParser) next() (byte, error) {
	for {
		c, err := p.byte()
		if err != nil || !isSpace(c) {
			return c, err
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *subParser) answer(maxLocators, hint int) (*SubscriptionInfo, error) {
	c, err := p.next()
	if err != nil {
		return nil, err
	}
	if c != '{' {
		return nil, p.malformed("the answer is not a JSON object")
	}
	info := &SubscriptionInfo{}
	var seenSlots, seenExpiry, seenLocators bool
	for first := true; ; first = false {
		if c, err = p.next(); err != nil {
			return nil, err
		}
		if c == '}' && first {
			break
		}
		if c != '"' {
			return nil, p.malformed("expected a field name")
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		if c, err = p.next(); err != nil {
			return nil, err
		}
		if c != ':' {
			return nil, p.malformed("expected ':' after %q", key)
		}
		switch key {
		case "available_slots", "subscription_expiry":
			seen := &seenSlots
			dst := &info.AvailableSlots
			if key == "subscription_expiry" {
				seen, dst = &seenExpiry, &info.SubscriptionExpiry
			}
			if *seen {
				return nil, p.malformed("%s given twice", key)
			}
			*seen = true
			if *dst, err = p.uint32(key); err != nil {
				return nil, err
			}
		case "locators":
			if seenLocators {
				return nil, p.malformed("locators given twice")
			}
			seenLocators = true
			if info.Locators, err = p.locators(maxLocators, hint); err != nil {
				return nil, err
			}
		default: // a field a later tower may add
			if err := p.skipValue(0); err != nil {
				return nil, err
			}
		}
		if c, err = p.next(); err != nil {
			return nil, err
		}
		if c == '}' {
			break
		}
		if c != ',' {
			return nil, p.malformed("expected ',' or '}' after %q", key)
		}
	}
	for { // only whitespace may follow
		c, err := p.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, p.fail(err)
		}
		if !isSpace(c) {
			return nil, p.malformed("data after the answer")
		}
	}
	switch {
	case !seenSlots:
		return nil, p.malformed("available_slots missing")
	case !seenExpiry:
		return nil, p.malformed("subscription_expiry missing")
	case !seenLocators:
		return nil, p.malformed("locators missing")
	}
	return info, nil
}

// key reads a field name (the opening quote read). A name longer than any field this client
// knows is read through but not kept.
func (p *subParser) key() (string, error) {
	// The buffer holds the name as written: room for the longest known name
	// ("subscription_expiry", 19) with every character a 6-byte \u escape, which is valid
	// JSON for the same name.
	var buf [128]byte
	n, escaped, long := 0, false, false
	for {
		c, err := p.byte()
		if err != nil {
			return "", err
		}
		switch {
		case c == '"':
			if long {
				return "", nil
			}
			if !escaped {
				return string(buf[:n]), nil
			}
			var s string
			if json.Unmarshal(append(append([]byte{'"'}, buf[:n]...), '"'), &s) != nil {
				return "", p.malformed("bad field name")
			}
			return s, nil
		case c < 0x20:
			return "", p.malformed("control character in a field name")
		case c == '\\':
			escaped = true
			e, err := p.escape()
			if err != nil {
				return "", err
			}
			if n+len(e) > len(buf) {
				long = true
			} else if !long {
				n += copy(buf[n:], e)
			}
			continue
		}
		if n == len(buf) {
			long = true
		} else if !long {
			buf[n] = c
			n++
		}
	}
}

// escape reads the rest of a string escape (the backslash read) and returns it as written.
func (p *subParser) escape() ([]byte, error) {
	c, err := p.byte()
	if err != nil {
		return nil, err
	}
	switch c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return []byte{'\\', c}, nil
	case 'u':
		e := []byte{'\\', 'u', 0, 0, 0, 0}
		for i := 2; i < 6; i++ {
			if e[i], err = p.byte(); err != nil {
				return nil, err
			}
			if !isHex(e[i]) {
				return nil, p.malformed("bad \\u escape")
			}
		}
		return e, nil
	}
	return nil, p.malformed("bad escape \\%c", c)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// uint32 reads a JSON number that must be an integer in 0..2^32-1, as the teos fields are.
func (p *subParser) uint32(field string) (uint32, error) {
	c, err := p.next()
	if err != nil {
		return 0, err
	}
	if c < '0' || c > '9' {
		return 0, p.malformed("%s is not a non-negative integer", field)
	}
	v := uint64(c - '0')
	for digits := 1; ; digits++ {
		c, err := p.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, p.fail(err)
		}
		if c < '0' || c > '9' {
			if c == '.' || c == 'e' || c == 'E' {
				return 0, p.malformed("%s is not an integer", field)
			}
			_ = p.r.UnreadByte()
			break
		}
		if v == 0 {
			return 0, p.malformed("%s has a leading zero", field)
		}
		if v = v*10 + uint64(c-'0'); v > 1<<32-1 || digits >= 10 {
			return 0, p.malformed("%s is over 2^32-1", field)
		}
	}
	return uint32(v), nil
}

// locators reads the locator list (the ':' read): each element must be 32 hex digits in
// quotes, and there may be at most max of them.
func (p *subParser) locators(max, hint int) ([]teos.Locator, error) {
	c, err := p.next()
	if err != nil {
		return nil, err
	}
	if c != '[' {
		return nil, p.malformed("locators is not a list")
	}
	var locs locatorList
	if hint > 0 {
		// Content-Length is the tower's word: reserve at most one block before the data comes.
		locs.cur = make([]teos.Locator, 0, min(hint, locatorBlock))
	}
	if c, err = p.next(); err != nil {
		return nil, err
	}
	if c == ']' {
		return locs.all(), nil
	}
	for {
		if c != '"' {
			return nil, p.malformed("locator %d is not a string", locs.len())
		}
		if locs.len() == max {
			return nil, fmt.Errorf("%w: get_subscription_info answer has more than %d locators (the client's bound)", ErrResponseTooLarge, max)
		}
		b, err := p.r.Peek(2*teos.LocatorLen + 1)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) { // unreachable: the buffer is larger
				return nil, p.malformed("locator %d", locs.len())
			}
			return nil, p.fail(err)
		}
		var loc teos.Locator
		for i := range loc {
			hi, lo := b[2*i], b[2*i+1]
			if !isHex(hi) || !isHex(lo) {
				return nil, p.malformed("locator %d is not %d hex digits", locs.len(), 2*teos.LocatorLen)
			}
			loc[i] = unhex(hi)<<4 | unhex(lo)
		}
		if b[2*teos.LocatorLen] != '"' {
			return nil, p.malformed("locator %d is not %d hex digits", locs.len(), 2*teos.LocatorLen)
		}
		_, _ = p.r.Discard(len(b))
		locs.add(loc)
		if c, err = p.next(); err != nil {
			return nil, err
		}
		if c == ']' {
			return locs.all(), nil
		}
		if c != ',' {
			return nil, p.malformed("expected ',' or ']' after locator %d", locs.len()-1)
		}
		if c, err = p.next(); err != nil {
			return nil, err
		}
	}
}

// locatorList collects locators in fixed blocks rather than by append, which would allocate
// about five times the final size over its growth and hold up to 2.25 times it at once.
type locatorList struct {
	full [][]teos.Locator
	cur  []teos.Locator
	n    int
}

const locatorBlock = 1 << 16 // 1 MiB of locators

func (l *locatorList) len() int { return l.n }

func (l *locatorList) add(loc teos.Locator) {
	if len(l.cur) == cap(l.cur) {
		if l.cur != nil {
			l.full = append(l.full, l.cur)
		}
		l.cur = make([]teos.Locator, 0, locatorBlock)
	}
	l.cur = append(l.cur, loc)
	l.n++
}

// all returns the locators in one slice, copied only when they are in several blocks or fill
// little of the one sized by Content-Length.
func (l *locatorList) all() []teos.Locator {
	if len(l.full) == 0 && l.cur != nil && cap(l.cur)-len(l.cur) <= len(l.cur)/8+64 {
		return l.cur
	}
	out := make([]teos.Locator, 0, l.n)
	for _, b := range l.full {
		out = append(out, b...)
	}
	return append(out, l.cur...)
}

// skipValue reads one JSON value and drops it, checking its syntax on the way.
func (p *subParser) skipValue(depth int) error {
	if depth > maxSkipDepth {
		return p.malformed("a field nests deeper than %d", maxSkipDepth)
	}
	c, err := p.next()
	if err != nil {
		return err
	}
	switch {
	case c == '"':
		return p.skipString()
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		for first := true; ; first = false {
			if c, err = p.next(); err != nil {
				return err
			}
			if c == end && first {
				return nil
			}
			if end == '}' {
				if c != '"' {
					return p.malformed("expected a field name")
				}
				if err := p.skipString(); err != nil {
					return err
				}
				if c, err = p.next(); err != nil {
					return err
				}
				if c != ':' {
					return p.malformed("expected ':'")
				}
			} else {
				_ = p.r.UnreadByte()
			}
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			if c, err = p.next(); err != nil {
				return err
			}
			if c == end {
				return nil
			}
			if c != ',' {
				return p.malformed("expected ',' or '%c'", end)
			}
		}
	case c == 't' || c == 'f' || c == 'n':
		word := map[byte]string{'t': "true", 'f': "false", 'n': "null"}[c]
		for i := 1; i < len(word); i++ {
			if c, err = p.byte(); err != nil {
				return err
			}
			if c != word[i] {
				return p.malformed("bad literal")
			}
		}
		return nil
	case c == '-' || '0' <= c && c <= '9':
		num := []byte{c}
		for {
			c, err := p.r.ReadByte()
			if err == io.EOF {
				break
			}
			if err != nil {
				return p.fail(err)
			}
			if !bytes.ContainsRune([]byte("+-.eE0123456789"), rune(c)) {
				_ = p.r.UnreadByte()
				break
			}
			if num = append(num, c); len(num) > 64 {
				return p.malformed("a number over 64 characters")
			}
		}
		if !json.Valid(num) {
			return p.malformed("bad number %q", num)
		}
		return nil
	}
	return p.malformed("unexpected %q", c)
}

// skipString reads the rest of a string (the opening quote read).
func (p *subParser) skipString() error {
	for {
		c, err := p.byte()
		if err != nil {
			return err
		}
		switch {
		case c == '"':
			return nil
		case c == '\\':
			if _, err := p.escape(); err != nil {
				return err
			}
		case c < 0x20:
			return p.malformed("control character in a string")
		}
	}
}
