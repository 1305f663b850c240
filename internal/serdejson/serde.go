// Package serdejson decodes JSON request bodies exactly as serde_json 1.0 does into
// derive(Deserialize) structs, and words its errors the same way, including the
// " at line L column C" suffix. rust-teos picks the error code by searching serde's message
// for substrings, and Go's encoding/json differs in ways clients can see (case-insensitive
// keys, last duplicate wins, other messages), so the public API decodes with this instead.
package serdejson

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// serde_json error texts (serde_json::error::ErrorCode).
const (
	msgEOFList           = "EOF while parsing a list"
	msgEOFObject         = "EOF while parsing an object"
	msgEOFString         = "EOF while parsing a string"
	msgEOFValue          = "EOF while parsing a value"
	msgExpectedColon     = "expected `:`"
	msgExpectedListEnd   = "expected `,` or `]`"
	msgExpectedObjectEnd = "expected `,` or `}`"
	msgExpectedIdent     = "expected ident"
	msgExpectedValue     = "expected value"
	msgInvalidEscape     = "invalid escape"
	msgInvalidNumber     = "invalid number"
	msgNumberOutOfRange  = "number out of range"
	msgInvalidCodePoint  = "invalid unicode code point"
	msgControlChar       = "control character (\\u0000-\\u001F) found while parsing a string"
	msgKeyMustBeString   = "key must be a string"
	msgLoneSurrogate     = "lone leading surrogate in hex escape"
	msgTrailingComma     = "trailing comma"
	msgTrailingChars     = "trailing characters"
	msgUnexpectedEndHex  = "unexpected end of hex escape"
)

// What serde's visitors say they expected.
const (
	expectHex    = "a hex encoded string" // hex::serde
	expectString = "a string"
	expectU32    = "u32"
	expectSeq    = "a sequence"
)

// Kind is the Rust type of a field, as far as the decoder needs to know it.
type Kind int

const (
	KindHex     Kind = iota // Vec<u8> through hex::serde
	KindString              // String
	KindU32                 // u32
	KindStruct              // a nested struct; Option<struct> when optional
	KindRawList             // Vec<Box<RawValue>>: a list whose elements are kept as raw JSON
)

// Field is one field of a Struct.
type Field struct {
	Name     string
	Kind     Kind
	Optional bool // only Option<T> fields may be absent
	Sub      *Struct
	// MaxItems, for KindRawList, is how many elements are kept; the rest are checked and
	// counted only, so a list of a million tiny elements costs no slice of a million. 0 keeps all.
	MaxItems int
}

// Struct mirrors one prost message with serde derives: its Rust name (used in
// messages) and its fields in declaration order (the order serde checks for missing ones).
type Struct struct {
	Name   string
	Fields []Field
}

// Value is one decoded field. A nil *Value slot means the field was absent; a Value with
// Null set is an Option given as JSON null.
type Value struct {
	Null  bool
	Bytes []byte
	Str   string
	U32   uint32
	Sub   []*Value
	Raw   [][]byte // KindRawList elements, slices of the body: the first Field.MaxItems of them
	Items int      // KindRawList: how many elements the list holds
}

// Error is a serde_json error. line 0 means no position yet: serde_json adds the
// position where the error surfaces, as fix_position does.
type Error struct {
	msg       string
	line, col int
}

// Error is the message serde_json's Display would print.
func (e *Error) Error() string { return e.String() }

// String is Error.
func (e *Error) String() string {
	if e.line == 0 {
		return e.msg
	}
	return fmt.Sprintf("%s at line %d column %d", e.msg, e.line, e.col)
}

type decoder struct {
	data []byte
	pos  int
	// values and slots hand out the decoded Values and the field slices in chunks: a body's
	// handful of fields cost two allocations instead of one each.
	values []Value
	slots  []*Value
	// stack is ignoreValue's record of open containers, kept for the next value: a list of
	// many small containers costs no allocation each.
	stack []byte
}

// decodeChunk fits add_appointment, the busiest body: five values in five slots.
const decodeChunk = 5

// newValue returns a zero Value from the current chunk.
func (d *decoder) newValue() *Value {
	if len(d.values) == cap(d.values) {
		d.values = make([]Value, 0, decodeChunk)
	}
	d.values = d.values[:len(d.values)+1]
	return &d.values[len(d.values)-1]
}

// newSlots returns n nil field slots, capped so that appending to them cannot reach another
// struct's.
func (d *decoder) newSlots(n int) []*Value {
	if cap(d.slots)-len(d.slots) < n {
		d.slots = make([]*Value, 0, max(n, decodeChunk))
	}
	start := len(d.slots)
	d.slots = d.slots[:start+n]
	return d.slots[start : start+n : start+n]
}

// Decode reads body as serde_json::from_slice would into the struct s.
func Decode(body []byte, s *Struct) ([]*Value, *Error) {
	d := &decoder{data: body}
	vals, err := d.decodeStruct(s)
	if err != nil {
		return nil, err
	}
	if _, ok := d.skipWhitespace(); ok {
		return nil, d.errPeek(msgTrailingChars)
	}
	return vals, nil
}

// position returns serde_json's line (1-based) and column (bytes since the last newline)
// of byte offset i.
func (d *decoder) position(i int) (line, col int) {
	start := bytes.LastIndexByte(d.data[:i], '\n') + 1
	return 1 + bytes.Count(d.data[:start], []byte{'\n'}), i - start
}

// errHere is serde_json's Deserializer::error: the position of what was consumed.
func (d *decoder) errHere(msg string) *Error {
	line, col := d.position(d.pos)
	return &Error{msg: msg, line: line, col: col}
}

// errPeek is serde_json's peek_error: the position counting the peeked byte.
func (d *decoder) errPeek(msg string) *Error {
	line, col := d.position(min(len(d.data), d.pos+1))
	return &Error{msg: msg, line: line, col: col}
}

// fix gives a visitor's error (no position yet) the current position.
func (d *decoder) fix(err *Error) *Error {
	if err.line == 0 {
		err.line, err.col = d.position(d.pos)
	}
	return err
}

func (d *decoder) peek() (byte, bool) {
	if d.pos < len(d.data) {
		return d.data[d.pos], true
	}
	return 0, false
}

func (d *decoder) next() (byte, bool) {
	c, ok := d.peek()
	if ok {
		d.pos++
	}
	return c, ok
}

func (d *decoder) skipByte() {
	if d.pos < len(d.data) {
		d.pos++
	}
}

// peekOrNull returns 0 at EOF, like serde_json's peek_or_null.
func (d *decoder) peekOrNull() byte {
	c, _ := d.peek()
	return c
}

func (d *decoder) skipWhitespace() (byte, bool) {
	for d.pos < len(d.data) {
		switch c := d.data[d.pos]; c {
		case ' ', '\n', '\t', '\r':
			d.pos++
		default:
			return c, true
		}
	}
	return 0, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// decodeStruct is deserialize_struct: an object, or an array taken field by field.
func (d *decoder) decodeStruct(s *Struct) ([]*Value, *Error) {
	c, ok := d.skipWhitespace()
	if !ok {
		return nil, d.errPeek(msgEOFValue)
	}
	var (
		vals []*Value
		err  *Error
	)
	switch c {
	case '{':
		d.pos++
		vals, err = d.visitMap(s)
		// serde_json always runs end_map, even after an error; its consumption moves the
		// position given to an error that has none yet.
		if endErr := d.endMap(); err == nil {
			err = endErr
		}
	case '[':
		d.pos++
		vals, err = d.visitSeq(s)
		if endErr := d.endSeq(); err == nil {
			err = endErr
		}
	default:
		err = d.invalidType("struct " + s.Name)
	}
	if err != nil {
		return nil, d.fix(err)
	}
	return vals, nil
}

func (d *decoder) visitMap(s *Struct) ([]*Value, *Error) {
	vals := d.newSlots(len(s.Fields))
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		i := fieldIndex(s, key)
		if i >= 0 && vals[i] != nil {
			return nil, &Error{msg: fmt.Sprintf("duplicate field `%s`", key)}
		}
		if err := d.parseColon(); err != nil {
			return nil, err
		}
		if i < 0 {
			if err := d.ignoreValue(); err != nil {
				return nil, err
			}
			continue
		}
		v, err := d.decodeField(s.Fields[i])
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	for i, f := range s.Fields {
		if vals[i] == nil && !f.Optional {
			return nil, &Error{msg: fmt.Sprintf("missing field `%s`", f.Name)}
		}
	}
	return vals, nil
}

// nextKey is MapAccess::next_key_seed: done is set when the closing brace is next.
func (d *decoder) nextKey(first bool) (key []byte, done bool, err *Error) {
	c, ok := d.skipWhitespace()
	switch {
	case !ok:
		return nil, false, d.errPeek(msgEOFObject)
	case c == '}':
		return nil, true, nil
	case c == ',' && !first:
		d.pos++
		c, ok = d.skipWhitespace()
	case !first:
		return nil, false, d.errPeek(msgExpectedObjectEnd)
	}
	switch {
	case !ok:
		return nil, false, d.errPeek(msgEOFValue)
	case c == '"':
		d.pos++
		key, err = d.parseStrBytes() // a slice of the body, compared and dropped
		return key, false, err
	case c == '}':
		return nil, false, d.errPeek(msgTrailingComma)
	default:
		return nil, false, d.errPeek(msgKeyMustBeString)
	}
}

func (d *decoder) parseColon() *Error {
	c, ok := d.skipWhitespace()
	switch {
	case !ok:
		return d.errPeek(msgEOFObject)
	case c != ':':
		return d.errPeek(msgExpectedColon)
	}
	d.pos++
	return nil
}

func (d *decoder) endMap() *Error {
	c, ok := d.skipWhitespace()
	switch {
	case !ok:
		return d.errPeek(msgEOFObject)
	case c == '}':
		d.pos++
		return nil
	case c == ',':
		return d.errPeek(msgTrailingComma)
	default:
		return d.errPeek(msgTrailingChars)
	}
}

func (d *decoder) visitSeq(s *Struct) ([]*Value, *Error) {
	vals := d.newSlots(len(s.Fields))
	for i, f := range s.Fields {
		more, err := d.nextElement(i == 0)
		if err != nil {
			return nil, err
		}
		if !more {
			plural := "s"
			if len(s.Fields) == 1 {
				plural = ""
			}
			return nil, &Error{msg: fmt.Sprintf("invalid length %d, expected struct %s with %d element%s",
				i, s.Name, len(s.Fields), plural)}
		}
		v, err := d.decodeField(f)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	return vals, nil
}

// nextElement is SeqAccess::next_element_seed up to the element itself.
func (d *decoder) nextElement(first bool) (bool, *Error) {
	c, ok := d.skipWhitespace()
	switch {
	case !ok:
		return false, d.errPeek(msgEOFList)
	case c == ']':
		return false, nil
	case c == ',' && !first:
		d.pos++
		c, ok = d.skipWhitespace()
	case !first:
		return false, d.errPeek(msgExpectedListEnd)
	}
	switch {
	case !ok:
		return false, d.errPeek(msgEOFValue)
	case c == ']':
		return false, d.errPeek(msgTrailingComma)
	}
	return true, nil
}

func (d *decoder) endSeq() *Error {
	c, ok := d.skipWhitespace()
	switch {
	case !ok:
		return d.errPeek(msgEOFList)
	case c == ']':
		d.pos++
		return nil
	case c == ',':
		d.pos++
		if c, ok := d.skipWhitespace(); ok && c == ']' {
			return d.errPeek(msgTrailingComma)
		}
		return d.errPeek(msgTrailingChars)
	default:
		return d.errPeek(msgTrailingChars)
	}
}

func fieldIndex(s *Struct, name []byte) int {
	for i, f := range s.Fields {
		if f.Name == string(name) {
			return i
		}
	}
	return -1
}

func (d *decoder) decodeField(f Field) (*Value, *Error) {
	switch f.Kind {
	case KindHex:
		s, err := d.decodeStringBytes(expectHex)
		if err != nil {
			return nil, err
		}
		b, msg := decodeHex(s)
		if msg != "" {
			return nil, d.fix(&Error{msg: msg})
		}
		v := d.newValue()
		v.Bytes = b
		return v, nil
	case KindString:
		s, err := d.decodeString(expectString)
		if err != nil {
			return nil, err
		}
		v := d.newValue()
		v.Str = s
		return v, nil
	case KindU32:
		n, err := d.decodeU32()
		if err != nil {
			return nil, err
		}
		v := d.newValue()
		v.U32 = n
		return v, nil
	case KindRawList:
		raw, items, err := d.decodeRawList(f.MaxItems)
		if err != nil {
			return nil, err
		}
		v := d.newValue()
		v.Raw, v.Items = raw, items
		return v, nil
	default:
		if f.Optional {
			// deserialize_option: null is None, anything else is parsed as the struct.
			if c, ok := d.skipWhitespace(); ok && c == 'n' {
				d.pos++
				if err := d.parseIdent("ull"); err != nil {
					return nil, err
				}
				v := d.newValue()
				v.Null = true
				return v, nil
			}
		}
		sub, err := d.decodeStruct(f.Sub)
		if err != nil {
			return nil, err
		}
		v := d.newValue()
		v.Sub = sub
		return v, nil
	}
}

// decodeRawList is deserialize_seq into Vec<Box<RawValue>>: every element's syntax is
// checked and counted, and the bytes of the first maxItems (all when 0) kept, so each can be
// decoded later as a body of its own.
func (d *decoder) decodeRawList(maxItems int) ([][]byte, int, *Error) {
	c, ok := d.skipWhitespace()
	if !ok {
		return nil, 0, d.errPeek(msgEOFValue)
	}
	if c != '[' {
		return nil, 0, d.fix(d.invalidType(expectSeq))
	}
	d.pos++
	raw := [][]byte{} // an empty list is not absent
	items := 0
	var err *Error
	for first := true; ; first = false {
		var more bool
		if more, err = d.nextElement(first); err != nil || !more {
			break
		}
		start := d.pos
		if err = d.ignoreValue(); err != nil {
			break
		}
		if items++; maxItems == 0 || len(raw) < maxItems {
			raw = append(raw, d.data[start:d.pos])
		}
	}
	if endErr := d.endSeq(); err == nil {
		err = endErr
	}
	if err != nil {
		return nil, 0, d.fix(err)
	}
	return raw, items, nil
}

// decodeString is deserialize_str with a visitor that only takes strings.
func (d *decoder) decodeString(expected string) (string, *Error) {
	b, err := d.decodeStringBytes(expected)
	return string(b), err
}

// decodeStringBytes is decodeString without the copy into a string: the bytes may be a slice
// of the body, for a visitor that only reads them (hex).
func (d *decoder) decodeStringBytes(expected string) ([]byte, *Error) {
	c, ok := d.skipWhitespace()
	if !ok {
		return nil, d.errPeek(msgEOFValue)
	}
	if c != '"' {
		return nil, d.fix(d.invalidType(expected))
	}
	d.pos++
	return d.parseStrBytes()
}

// decodeU32 is deserialize_u32: serde takes any JSON integer and range-checks it.
func (d *decoder) decodeU32() (uint32, *Error) {
	c, ok := d.skipWhitespace()
	if !ok {
		return 0, d.errPeek(msgEOFValue)
	}
	var (
		n   number
		err *Error
	)
	switch {
	case c == '-':
		d.pos++
		n, err = d.parseNumber(false)
	case isDigit(c):
		n, err = d.parseNumber(true)
	default:
		return 0, d.fix(d.invalidType(expectU32))
	}
	if err != nil {
		return 0, err
	}
	switch n.kind {
	case numUnsigned:
		if n.u > math.MaxUint32 {
			return 0, d.fix(&Error{msg: fmt.Sprintf("invalid value: %s, expected %s", n.unexpected(), expectU32)})
		}
		return uint32(n.u), nil
	case numSigned:
		return 0, d.fix(&Error{msg: fmt.Sprintf("invalid value: %s, expected %s", n.unexpected(), expectU32)})
	default:
		return 0, d.fix(&Error{msg: fmt.Sprintf("invalid type: %s, expected %s", n.unexpected(), expectU32)})
	}
}

// invalidType is peek_invalid_type: it reads the offending value (except arrays and
// objects) to describe it. The caller fixes the position.
func (d *decoder) invalidType(expected string) *Error {
	c := d.peekOrNull()
	var unexpected string
	switch {
	case c == 'n':
		d.pos++
		if err := d.parseIdent("ull"); err != nil {
			return err
		}
		unexpected = "null"
	case c == 't':
		d.pos++
		if err := d.parseIdent("rue"); err != nil {
			return err
		}
		unexpected = "boolean `true`"
	case c == 'f':
		d.pos++
		if err := d.parseIdent("alse"); err != nil {
			return err
		}
		unexpected = "boolean `false`"
	case c == '-' || isDigit(c):
		positive := c != '-'
		if !positive {
			d.pos++
		}
		n, err := d.parseNumber(positive)
		if err != nil {
			return err
		}
		unexpected = n.unexpected()
	case c == '"':
		d.pos++
		s, err := d.parseStr()
		if err != nil {
			return err
		}
		unexpected = "string " + rustStrDebug(s)
	case c == '[':
		unexpected = "sequence"
	case c == '{':
		unexpected = "map"
	default:
		return d.errPeek(msgExpectedValue)
	}
	return &Error{msg: fmt.Sprintf("invalid type: %s, expected %s", unexpected, expected)}
}

func (d *decoder) parseIdent(rest string) *Error {
	for i := 0; i < len(rest); i++ {
		c, ok := d.next()
		if !ok {
			return d.errHere(msgEOFValue)
		}
		if c != rest[i] {
			return d.errHere(msgExpectedIdent)
		}
	}
	return nil
}

// parseStr reads a string whose opening quote has been consumed, validating escapes and
// UTF-8 as serde_json does for strings it hands to a visitor.
func (d *decoder) parseStr() (string, *Error) {
	b, err := d.parseStrBytes()
	return string(b), err
}

// parseStrBytes is parseStr returning bytes, which are a slice of the body when the string
// has no escapes (the common case: no copy).
func (d *decoder) parseStrBytes() ([]byte, *Error) {
	var sb []byte
	start := d.pos
	for {
		d.pos = plainEnd(d.data, d.pos)
		if d.pos == len(d.data) {
			return nil, d.errHere(msgEOFString)
		}
		switch d.data[d.pos] {
		case '"':
			if sb == nil {
				sb = d.data[start:d.pos:d.pos]
			} else {
				sb = append(sb, d.data[start:d.pos]...)
			}
			d.pos++
			if !utf8.Valid(sb) {
				return nil, d.errHere(msgInvalidCodePoint)
			}
			return sb, nil
		case '\\':
			sb = append(sb, d.data[start:d.pos]...)
			d.pos++
			var err *Error
			if sb, err = d.parseEscape(sb); err != nil {
				return nil, err
			}
			start = d.pos
		default:
			d.pos++
			return nil, d.errHere(msgControlChar)
		}
	}
}

// plainEnd is the index of the first byte from i on that a string does not hold as it is
// ('"', '\\' or a control), or len(data). It tests eight bytes a step: the strings of an
// add are a kilobyte of hex, which a byte at a time cost ~15 instructions a character.
func plainEnd(data []byte, i int) int {
	for ; i+8 <= len(data); i += 8 {
		w := binary.LittleEndian.Uint64(data[i:])
		// A byte below 0x20, or equal to '"' or '\\' (zero after the xor), borrows into its
		// high bit; bytes >= 0x80 are excluded by &^ w. Exact for "any such byte".
		q, bs := w^(lsb*'"'), w^(lsb*'\\')
		if ((w-lsb*0x20)|(q-lsb)|(bs-lsb))&^w&msb != 0 {
			break
		}
	}
	for i < len(data) && plainStrByte[data[i]] {
		i++
	}
	return i
}

const (
	lsb = 0x0101010101010101 // the low bit of every byte of a word
	msb = 0x8080808080808080 // the high bit of every byte
)

// plainStrByte marks the bytes a string holds as they are: all but '"', '\\' and controls.
var plainStrByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c != '"' && c != '\\' && c >= 0x20
	}
	return t
}()

func (d *decoder) parseEscape(sb []byte) ([]byte, *Error) {
	c, ok := d.next()
	if !ok {
		return nil, d.errHere(msgEOFString)
	}
	switch c {
	case '"', '\\', '/':
		return append(sb, c), nil
	case 'b':
		return append(sb, '\b'), nil
	case 'f':
		return append(sb, '\f'), nil
	case 'n':
		return append(sb, '\n'), nil
	case 'r':
		return append(sb, '\r'), nil
	case 't':
		return append(sb, '\t'), nil
	case 'u':
		return d.parseUnicodeEscape(sb)
	default:
		return nil, d.errHere(msgInvalidEscape)
	}
}

// parseUnicodeEscape decodes \uXXXX (the "\u" consumed); surrogates must come in pairs.
func (d *decoder) parseUnicodeEscape(sb []byte) ([]byte, *Error) {
	n, err := d.decodeHexEscape()
	if err != nil {
		return nil, err
	}
	if n >= 0xDC00 && n <= 0xDFFF {
		return nil, d.errHere(msgLoneSurrogate)
	}
	if n < 0xD800 || n > 0xDBFF {
		return utf8.AppendRune(sb, rune(n)), nil
	}
	for _, want := range []byte{'\\', 'u'} {
		c, ok := d.peek()
		if !ok {
			return nil, d.errHere(msgEOFString)
		}
		d.pos++
		if c != want {
			return nil, d.errHere(msgUnexpectedEndHex)
		}
	}
	n2, err := d.decodeHexEscape()
	if err != nil {
		return nil, err
	}
	if n2 < 0xDC00 || n2 > 0xDFFF {
		return nil, d.errHere(msgLoneSurrogate)
	}
	r := (rune(n)-0xD800)<<10 | (rune(n2) - 0xDC00) + 0x10000
	return utf8.AppendRune(sb, r), nil
}

func (d *decoder) decodeHexEscape() (uint16, *Error) {
	if len(d.data)-d.pos < 4 {
		d.pos = len(d.data)
		return 0, d.errHere(msgEOFString)
	}
	digits := d.data[d.pos : d.pos+4]
	d.pos += 4
	var n uint16
	for _, c := range digits {
		v, ok := hexVal(c)
		if !ok {
			return 0, d.errHere(msgInvalidEscape)
		}
		n = n<<4 | uint16(v)
	}
	return n, nil
}

type numKind int

const (
	numUnsigned numKind = iota
	numSigned
	numFloat
)

type number struct {
	kind numKind
	u    uint64
	i    int64
	f    float64
}

// unexpected renders the number as serde_json does in "invalid type/value" messages
// (floats through ryu).
func (n number) unexpected() string {
	switch n.kind {
	case numUnsigned:
		return fmt.Sprintf("integer `%d`", n.u)
	case numSigned:
		return fmt.Sprintf("integer `%d`", n.i)
	default:
		return fmt.Sprintf("floating point `%s`", ryuFormat(n.f))
	}
}

// ryuFormat prints a finite float as the ryu crate does: plain decimal with at least one
// fractional digit while the value has at most 16 integer digits and no more than four
// leading fractional zeros, scientific ("1e30", "1.5e-7") otherwise.
func ryuFormat(f float64) string {
	sign := ""
	if math.Signbit(f) {
		sign, f = "-", -f
	}
	if f == 0 {
		return sign + "0.0"
	}
	// Shortest round-trip digits, as ryu computes them: d.ddddde±x.
	mantissa, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	digits := strings.Replace(mantissa, ".", "", 1)
	e, _ := strconv.Atoi(exp)
	length := len(digits)
	kk := e + 1 // 10^(kk-1) <= f < 10^kk
	k := kk - length
	switch {
	case k >= 0 && kk <= 16:
		return sign + digits + strings.Repeat("0", k) + ".0"
	case kk > 0 && kk <= 16:
		return sign + digits[:kk] + "." + digits[kk:]
	case kk > -5 && kk <= 0:
		return sign + "0." + strings.Repeat("0", -kk) + digits
	case length == 1:
		return sign + digits + "e" + strconv.Itoa(kk-1)
	default:
		return sign + digits[:1] + "." + digits[1:] + "e" + strconv.Itoa(kk-1)
	}
}

// u64Overflows reports whether n*10+digit exceeds u64 (serde_json's overflow! macro).
func u64Overflows(n, digit uint64) bool { return n > (math.MaxUint64-digit)/10 }

// parseNumber is serde_json's parse_integer (its '-' already consumed when positive is
// false). Floats are computed the way serde_json does without its float_roundtrip
// feature (rust-teos does not enable it): a u64 significand times a power of ten, not
// always the correctly rounded value.
func (d *decoder) parseNumber(positive bool) (number, *Error) {
	c, ok := d.next()
	if !ok {
		return number{}, d.errHere(msgEOFValue)
	}
	switch {
	case c == '0':
		if isDigit(d.peekOrNull()) {
			return number{}, d.errPeek(msgInvalidNumber)
		}
		return d.parseNumberTail(positive, 0)
	case c >= '1' && c <= '9':
		significand := uint64(c - '0')
		for {
			c := d.peekOrNull()
			if !isDigit(c) {
				return d.parseNumberTail(positive, significand)
			}
			digit := uint64(c - '0')
			if u64Overflows(significand, digit) {
				return d.float(d.parseLongInteger(positive, significand))
			}
			d.pos++
			significand = significand*10 + digit
		}
	default:
		return number{}, d.errHere(msgInvalidNumber)
	}
}

func (d *decoder) float(f float64, err *Error) (number, *Error) {
	if err != nil {
		return number{}, err
	}
	return number{kind: numFloat, f: f}, nil
}

func (d *decoder) parseNumberTail(positive bool, significand uint64) (number, *Error) {
	switch d.peekOrNull() {
	case '.':
		return d.float(d.parseDecimal(positive, significand, 0))
	case 'e', 'E':
		return d.float(d.parseExponent(positive, significand, 0))
	}
	switch {
	case positive:
		return number{kind: numUnsigned, u: significand}, nil
	case significand == 0 || significand > 1<<63:
		// serde_json turns -0 and values below i64::MIN into floats.
		return number{kind: numFloat, f: -float64(significand)}, nil
	default:
		return number{kind: numSigned, i: int64(-significand)}, nil
	}
}

func (d *decoder) parseLongInteger(positive bool, significand uint64) (float64, *Error) {
	var exponent int32
	for {
		switch c := d.peekOrNull(); {
		case isDigit(c):
			d.pos++
			exponent++ // digits beyond u64 only scale the value
		case c == '.':
			return d.parseDecimal(positive, significand, exponent)
		case c == 'e' || c == 'E':
			return d.parseExponent(positive, significand, exponent)
		default:
			return d.f64FromParts(positive, significand, exponent)
		}
	}
}

func (d *decoder) parseDecimal(positive bool, significand uint64, exponentBefore int32) (float64, *Error) {
	d.pos++ // '.'
	var exponentAfter int32
	for isDigit(d.peekOrNull()) {
		digit := uint64(d.peekOrNull() - '0')
		if u64Overflows(significand, digit) {
			// Further digits are ignored.
			for isDigit(d.peekOrNull()) {
				d.pos++
			}
			if c := d.peekOrNull(); c == 'e' || c == 'E' {
				return d.parseExponent(positive, significand, exponentBefore+exponentAfter)
			}
			return d.f64FromParts(positive, significand, exponentBefore+exponentAfter)
		}
		d.pos++
		significand = significand*10 + digit
		exponentAfter--
	}
	if exponentAfter == 0 {
		if _, ok := d.peek(); ok {
			return 0, d.errPeek(msgInvalidNumber)
		}
		return 0, d.errPeek(msgEOFValue)
	}
	exponent := exponentBefore + exponentAfter
	if c := d.peekOrNull(); c == 'e' || c == 'E' {
		return d.parseExponent(positive, significand, exponent)
	}
	return d.f64FromParts(positive, significand, exponent)
}

func (d *decoder) parseExponent(positive bool, significand uint64, startingExp int32) (float64, *Error) {
	d.pos++ // 'e'
	positiveExp := true
	switch d.peekOrNull() {
	case '+':
		d.pos++
	case '-':
		d.pos++
		positiveExp = false
	}
	c, ok := d.next()
	if !ok {
		return 0, d.errHere(msgEOFValue)
	}
	if !isDigit(c) {
		return 0, d.errHere(msgInvalidNumber)
	}
	exp := int32(c - '0')
	for isDigit(d.peekOrNull()) {
		digit := int32(d.peekOrNull() - '0')
		d.pos++
		if exp > (math.MaxInt32-digit)/10 {
			// An exponent beyond i32: out of range, or zero.
			if significand != 0 && positiveExp {
				return 0, d.errHere(msgNumberOutOfRange)
			}
			for isDigit(d.peekOrNull()) {
				d.pos++
			}
			if positive {
				return 0, nil
			}
			return math.Copysign(0, -1), nil
		}
		exp = exp*10 + digit
	}
	final := int64(startingExp) - int64(exp)
	if positiveExp {
		final = int64(startingExp) + int64(exp)
	}
	return d.f64FromParts(positive, significand, int32(max(math.MinInt32, min(math.MaxInt32, final))))
}

// pow10 holds 1e0..1e308 correctly rounded, like serde_json's POW10 table.
var pow10 = func() [309]float64 {
	var t [309]float64
	for i := range t {
		t[i], _ = strconv.ParseFloat("1e"+strconv.Itoa(i), 64)
	}
	return t
}()

func (d *decoder) f64FromParts(positive bool, significand uint64, exponent int32) (float64, *Error) {
	f := float64(significand)
	for {
		abs := int64(exponent)
		if abs < 0 {
			abs = -abs
		}
		if abs < int64(len(pow10)) {
			if exponent >= 0 {
				f *= pow10[abs]
				if math.IsInf(f, 0) {
					return 0, d.errHere(msgNumberOutOfRange)
				}
			} else {
				f /= pow10[abs]
			}
			break
		}
		if f == 0 {
			break
		}
		if exponent >= 0 {
			return 0, d.errHere(msgNumberOutOfRange)
		}
		f /= 1e308
		exponent += 308
	}
	if !positive {
		f = -f
	}
	return f, nil
}

// ignoreValue is serde_json's ignore_value: it checks the syntax of a value nobody reads.
// Unlike parsed strings, ignored ones are not checked for UTF-8 or surrogate pairs.
func (d *decoder) ignoreValue() *Error {
	stack := d.stack[:0] // enclosing '[' / '{'
	defer func() { d.stack = stack }()
	for {
		c, ok := d.skipWhitespace()
		if !ok {
			return d.errPeek(msgEOFValue)
		}
		opened := false
		switch {
		case c == 'n':
			d.pos++
			if err := d.parseIdent("ull"); err != nil {
				return err
			}
		case c == 't':
			d.pos++
			if err := d.parseIdent("rue"); err != nil {
				return err
			}
		case c == 'f':
			d.pos++
			if err := d.parseIdent("alse"); err != nil {
				return err
			}
		case c == '-':
			d.pos++
			if err := d.ignoreNumber(); err != nil {
				return err
			}
		case isDigit(c):
			if err := d.ignoreNumber(); err != nil {
				return err
			}
		case c == '"':
			d.pos++
			if err := d.ignoreStr(); err != nil {
				return err
			}
		case c == '[' || c == '{':
			d.pos++
			stack = append(stack, c)
			opened = true
		default:
			return d.errPeek(msgExpectedValue)
		}
		if len(stack) == 0 {
			return nil
		}
		// After a scalar or a closed container, expect a comma or closers; right after an
		// opener, a closer or the first element.
		acceptComma := !opened
		for {
			frame := stack[len(stack)-1]
			c, ok := d.skipWhitespace()
			if !ok {
				if frame == '[' {
					return d.errPeek(msgEOFList)
				}
				return d.errPeek(msgEOFObject)
			}
			if c == ',' && acceptComma {
				d.pos++
				break
			}
			if (c == ']' && frame == '[') || (c == '}' && frame == '{') {
				d.pos++
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return nil
				}
				acceptComma = true
				continue
			}
			if acceptComma {
				if frame == '[' {
					return d.errPeek(msgExpectedListEnd)
				}
				return d.errPeek(msgExpectedObjectEnd)
			}
			break
		}
		if stack[len(stack)-1] == '{' {
			c, ok := d.skipWhitespace()
			switch {
			case !ok:
				return d.errPeek(msgEOFObject)
			case c != '"':
				return d.errPeek(msgKeyMustBeString)
			}
			d.pos++
			if err := d.ignoreStr(); err != nil {
				return err
			}
			if err := d.parseColon(); err != nil {
				return err
			}
		}
	}
}

func (d *decoder) ignoreStr() *Error {
	for {
		d.pos = plainEnd(d.data, d.pos)
		if d.pos == len(d.data) {
			return d.errHere(msgEOFString)
		}
		switch d.data[d.pos] {
		case '"':
			d.pos++
			return nil
		case '\\':
			d.pos++
			c, ok := d.next()
			if !ok {
				return d.errHere(msgEOFString)
			}
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if _, err := d.decodeHexEscape(); err != nil {
					return err
				}
			default:
				return d.errHere(msgInvalidEscape)
			}
		default:
			return d.errHere(msgControlChar)
		}
	}
}

// ignoreNumber is ignore_integer and friends (the '-' already consumed).
func (d *decoder) ignoreNumber() *Error {
	c := d.peekOrNull()
	switch {
	case c == '0':
		d.pos++
		if isDigit(d.peekOrNull()) {
			return d.errPeek(msgInvalidNumber)
		}
	case c >= '1' && c <= '9':
		d.pos++
		for isDigit(d.peekOrNull()) {
			d.pos++
		}
	default:
		d.skipByte() // next_char_or_null consumes whatever is there
		return d.errHere(msgInvalidNumber)
	}
	if d.peekOrNull() == '.' {
		d.pos++
		if !isDigit(d.peekOrNull()) {
			return d.errPeek(msgInvalidNumber)
		}
		for isDigit(d.peekOrNull()) {
			d.pos++
		}
	}
	if c := d.peekOrNull(); c == 'e' || c == 'E' {
		d.pos++
		if c := d.peekOrNull(); c == '+' || c == '-' {
			d.pos++
		}
		c := d.peekOrNull()
		d.skipByte()
		if !isDigit(c) {
			return d.errHere(msgInvalidNumber)
		}
		for isDigit(d.peekOrNull()) {
			d.pos++
		}
	}
	return nil
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeHex decodes like the rust hex crate (FromHex for Vec<u8>) and returns its error
// text on failure. encoding/hex takes the same digits (either case), so it does the work and
// decodeHexSlow finds the crate's message when it fails.
func decodeHex(s []byte) ([]byte, string) {
	if len(s)%2 != 0 {
		return nil, "Odd number of digits"
	}
	out := make([]byte, len(s)/2)
	if _, err := hex.Decode(out, s); err != nil {
		return decodeHexSlow(s)
	}
	return out, ""
}

// decodeHexSlow is decodeHex a digit at a time. Positions count bytes; a non-ASCII byte is
// reported as the Latin-1 character with that value, as the crate casts the byte to a char.
func decodeHexSlow(s []byte) ([]byte, string) {
	if len(s)%2 != 0 {
		return nil, "Odd number of digits"
	}
	out := make([]byte, len(s)/2)
	for i := 0; i < len(s); i++ {
		v, ok := hexVal(s[i])
		if !ok {
			return nil, fmt.Sprintf("Invalid character %s at position %d", rustCharDebug(rune(s[i])), i)
		}
		out[i/2] = out[i/2]<<4 | v
	}
	return out, ""
}

// rustCharDebug renders r as Rust's Debug for char does: quoted and escaped.
func rustCharDebug(r rune) string {
	return "'" + rustEscape(r, true, false) + "'"
}

// rustStrDebug renders s as Rust's Debug for str does.
func rustStrDebug(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		sb.WriteString(rustEscape(r, false, true))
	}
	sb.WriteByte('"')
	return sb.String()
}

// rustEscape is char::escape_debug_ext.
func rustEscape(r rune, singleQuote, doubleQuote bool) string {
	switch {
	case r == 0:
		return `\0`
	case r == '\t':
		return `\t`
	case r == '\r':
		return `\r`
	case r == '\n':
		return `\n`
	case r == '\\':
		return `\\`
	case r == '"' && doubleQuote:
		return `\"`
	case r == '\'' && singleQuote:
		return `\'`
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Other_Grapheme_Extend) || !unicode.IsPrint(r):
		return fmt.Sprintf(`\u{%x}`, r)
	default:
		return string(r)
	}
}
