package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
)

// subscriptionServer answers every request with serve, and counts requests.
func subscriptionServer(t *testing.T, serve func(w http.ResponseWriter, call int)) (*Tower, *atomic.Int64, func() int) {
	t.Helper()
	var calls atomic.Int64
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		serve(&countingWriter{ResponseWriter: w, n: &written}, int(calls.Add(1)))
	}))
	t.Cleanup(srv.Close)
	c := New(srv.URL, teos.UserID{}, newUserKey(t), WithRetry(3, time.Millisecond))
	return c, &written, func() int { return int(calls.Load()) }
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func randomLocators(t *testing.T, n int) []teos.Locator {
	t.Helper()
	locs := make([]teos.Locator, n)
	b := make([]byte, n*teos.LocatorLen)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range locs {
		copy(locs[i][:], b[i*teos.LocatorLen:])
	}
	return locs
}

// rustAnswer is the answer as rust-teos (serde_json, compact) and teosd's HTTP edge write it.
func rustAnswer(slots, expiry uint32, locs []teos.Locator) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"available_slots":%d,"subscription_expiry":%d,"locators":[`, slots, expiry)
	for i, l := range locs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", l.String())
	}
	b.WriteString("]}")
	return b.Bytes()
}

// TestSubscriptionInfoPastEightMiB: 300,000 locators (10.5 MB of JSON, over the 8 MiB every
// other answer is held to) come through whole, streamed (no Content-Length) or not.
func TestSubscriptionInfoPastEightMiB(t *testing.T) {
	const n = 300_000
	locs := randomLocators(t, n)
	body := rustAnswer(7, 900, locs)
	if len(body) <= maxResponseBytes {
		t.Fatalf("answer of %d bytes, want over %d", len(body), maxResponseBytes)
	}
	for _, chunked := range []bool{true, false} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			c, _, _ := subscriptionServer(t, func(w http.ResponseWriter, _ int) {
				if !chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				}
				for rest := body; len(rest) > 0; { // in pieces that cut locators
					k := min(len(rest), 4093)
					_, _ = w.Write(rest[:k])
					rest = rest[k:]
				}
			})
			info, err := c.GetSubscriptionInfo(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if info.AvailableSlots != 7 || info.SubscriptionExpiry != 900 || len(info.Locators) != n {
				t.Fatalf("got slots %d expiry %d, %d locators", info.AvailableSlots, info.SubscriptionExpiry, len(info.Locators))
			}
			for i := range locs {
				if info.Locators[i] != locs[i] {
					t.Fatalf("locator %d = %s, want %s", i, info.Locators[i], locs[i])
				}
			}
		})
	}
}

// TestOtherAnswersKeepEightMiB: get_appointment's answer is still bounded at 8 MiB, and an
// answer over it is named as such rather than as bad JSON.
func TestOtherAnswersKeepEightMiB(t *testing.T) {
	c, _, _ := subscriptionServer(t, func(w http.ResponseWriter, _ int) {
		fmt.Fprintf(w, `{"appointment":{"locator":"%s","encrypted_blob":"%s","to_self_delay":1},"status":"being_watched"}`,
			strings.Repeat("0", 32), strings.Repeat("ab", maxResponseBytes/2))
	})
	_, err := c.GetAppointment(t.Context(), teos.Locator{})
	if !errors.Is(err, ErrResponseTooLarge) || !errors.Is(err, ErrBadResponse) {
		t.Fatalf("err = %v, want ErrResponseTooLarge", err)
	}
}

// TestHostileSubscriptionAnswers: a tower that never stops sending (locators, whitespace, a
// field of its own) is cut off at the client's bound, with ErrResponseTooLarge and no result.
func TestHostileSubscriptionAnswers(t *testing.T) {
	const bound = 1000
	// Far more than the bound lets through: the server stops on its own only if the client
	// never hangs up.
	const endless = 64 << 20
	head := `{"available_slots":1,"subscription_expiry":2,`
	cases := []struct {
		name   string
		prefix string
		repeat string
	}{
		{"locators", head + `"locators":[`, `"00112233445566778899aabbccddeeff",`},
		{"whitespace", head, " "},
		{"unknown field", head + `"padding":"`, "abcdefgh"},
		{"nested lists", head + `"padding":`, "[1,"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, written, _ := subscriptionServer(t, func(w http.ResponseWriter, _ int) {
				_, _ = io.WriteString(w, tc.prefix)
				chunk := []byte(strings.Repeat(tc.repeat, 64<<10/len(tc.repeat)))
				for sent := 0; sent < endless; sent += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return // the client hung up
					}
				}
			})
			c.maxLocators = bound
			info, err := c.GetSubscriptionInfo(t.Context())
			if info != nil {
				t.Fatalf("got a result: %d locators", len(info.Locators))
			}
			want := ErrResponseTooLarge
			if tc.name == "nested lists" {
				want = ErrBadResponse // past the nesting bound long before the byte bound
			}
			if !errors.Is(err, want) {
				t.Fatalf("err = %v, want %v", err, want)
			}
			if n := written.Load(); n >= endless {
				t.Fatalf("the tower sent all %d bytes: the client read to the end", n)
			}
			t.Logf("%v (tower wrote %d bytes)", err, written.Load())
		})
	}
}

// endlessReader is an answer that never ends: prefix, then repeat forever.
type endlessReader struct {
	prefix []byte
	repeat []byte
	off    int // in repeat
	read   int64
}

func (r *endlessReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.prefix) > 0 {
			k := copy(p[n:], r.prefix)
			r.prefix = r.prefix[k:]
			n += k
			continue
		}
		k := copy(p[n:], r.repeat[r.off:])
		r.off = (r.off + k) % len(r.repeat)
		n += k
	}
	r.read += int64(n)
	return n, nil
}

// TestSubscriptionDecoderMemory: the decoder holds 16 bytes per locator and nothing per byte
// it reads, so an endless answer costs at most the bound's locators, never the answer's size.
func TestSubscriptionDecoderMemory(t *testing.T) {
	const bound = 200_000
	head := `{"available_slots":1,"subscription_expiry":2,`
	cases := []struct {
		name     string
		r        *endlessReader
		maxAlloc uint64
	}{
		// 9.6 MB of whitespace read through; a buffered read would hold all of it.
		{"whitespace", &endlessReader{prefix: []byte(head), repeat: []byte("    ")}, 1 << 20},
		// 200,000 locators held (3.2 MB) in blocks of 1 MiB; no result is built. Reading the 7 MB
		// into a buffer first, or growing one slice by append (16 MB in all), would fail.
		{"locators", &endlessReader{prefix: []byte(head + `"locators":[`), repeat: []byte(`"00112233445566778899aabbccddeeff",`)}, 16*bound + 3<<20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &subscriptionDecoder{maxLocators: bound}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := d.decodeStream(tc.r, -1)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrResponseTooLarge) || d.info != nil {
				t.Fatalf("err = %v, info %v; want ErrResponseTooLarge and nothing", err, d.info != nil)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("read %d bytes, allocated %d", tc.r.read, alloc)
			if tc.r.read < 16*bound {
				t.Fatalf("read only %d bytes", tc.r.read)
			}
			if alloc > tc.maxAlloc {
				t.Fatalf("allocated %d bytes reading %d, want at most %d", alloc, tc.r.read, tc.maxAlloc)
			}
		})
	}
}

// TestSubscriptionAnswersAgreeWithEncodingJSON: every well-formed answer, in any field order,
// indented or not, with fields a later tower may add, decodes as encoding/json reads it.
func TestSubscriptionAnswersAgreeWithEncodingJSON(t *testing.T) {
	locs := randomLocators(t, 5)
	hexes := make([]string, len(locs))
	for i, l := range locs {
		hexes[i] = l.String()
	}
	upper := strings.ToUpper(hexes[0])
	answers := []string{
		string(rustAnswer(0, 0, nil)),
		string(rustAnswer(math.MaxUint32, 1, locs)),
		fmt.Sprintf(`{"locators":["%s"],"subscription_expiry":5,"available_slots":6}`, upper),
		fmt.Sprintf(" \r\n{ \"available_slots\" : 1 ,\n\t\"subscription_expiry\":2, \"locators\" : [ \"%s\" , \"%s\" ] } \n", hexes[1], hexes[2]),
		fmt.Sprintf(`{"available_slots":1,"extra":{"a":[1,-2.5e3,true,false,null,"x\"\\\u00e9"],"b":{}},"more":[],"subscription_expiry":2,"locators":["%s"],"n":0}`, hexes[3]),
		`{"av\u0061ilable_slots":3,"subscription_expiry":4,"locators":[]}`, // an escaped field name
		// Every character escaped: 114 bytes on the wire for a 19-byte name.
		`{"available_slots":3,"` + escapeAll("subscription_expiry") + `":4,"locators":[]}`,
	}
	// encoding/json's own indented output too.
	indented, _ := json.MarshalIndent(map[string]any{"available_slots": 9, "subscription_expiry": 10, "locators": hexes}, "", "    ")
	answers = append(answers, string(indented))
	for _, a := range answers {
		var want struct {
			AvailableSlots     uint32   `json:"available_slots"`
			SubscriptionExpiry uint32   `json:"subscription_expiry"`
			Locators           []string `json:"locators"`
		}
		if err := json.Unmarshal([]byte(a), &want); err != nil {
			t.Fatalf("test answer %q: %v", a, err)
		}
		d := &subscriptionDecoder{maxLocators: DefaultMaxLocators}
		if err := d.decodeStream(strings.NewReader(a), int64(len(a))); err != nil {
			t.Fatalf("%q: %v", a, err)
		}
		got := d.info
		if got.AvailableSlots != want.AvailableSlots || got.SubscriptionExpiry != want.SubscriptionExpiry || len(got.Locators) != len(want.Locators) {
			t.Fatalf("%q: got %+v", a, got)
		}
		for i, s := range want.Locators {
			if !strings.EqualFold(got.Locators[i].String(), s) {
				t.Fatalf("%q: locator %d = %s, want %s", a, i, got.Locators[i], s)
			}
		}
	}
}

// escapeAll writes s with every character as a \u escape.
func escapeAll(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// TestMalformedSubscriptionAnswers: each answer that is not the teos one gets ErrBadResponse
// with a reason, and no result.
func TestMalformedSubscriptionAnswers(t *testing.T) {
	loc := strings.Repeat("ab", 16)
	ok := fmt.Sprintf(`"available_slots":1,"subscription_expiry":2,"locators":["%s"]`, loc)
	cases := map[string]string{
		"empty":                 ``,
		"not an object":         `[]`,
		"truncated":             `{` + ok,
		"truncated in locator":  `{"available_slots":1,"subscription_expiry":2,"locators":["abab`,
		"trailing data":         `{` + ok + `}x`,
		"second object":         `{` + ok + `}{}`,
		"trailing comma":        `{` + ok + `,}`,
		"missing locators":      `{"available_slots":1,"subscription_expiry":2}`,
		"missing slots":         fmt.Sprintf(`{"subscription_expiry":2,"locators":["%s"]}`, loc),
		"missing expiry":        fmt.Sprintf(`{"available_slots":1,"locators":["%s"]}`, loc),
		"locators twice":        `{` + ok + `,"locators":[]}`,
		"slots twice":           `{` + ok + `,"available_slots":1}`,
		"null locators":         `{"available_slots":1,"subscription_expiry":2,"locators":null}`,
		"locators object":       `{"available_slots":1,"subscription_expiry":2,"locators":{}}`,
		"short locator":         `{"available_slots":1,"subscription_expiry":2,"locators":["abab"]}`,
		"long locator":          fmt.Sprintf(`{"available_slots":1,"subscription_expiry":2,"locators":["%s00"]}`, loc),
		"not hex":               fmt.Sprintf(`{"available_slots":1,"subscription_expiry":2,"locators":["%sz"]}`, loc[:31]),
		"number locator":        `{"available_slots":1,"subscription_expiry":2,"locators":[1]}`,
		"trailing comma list":   fmt.Sprintf(`{"available_slots":1,"subscription_expiry":2,"locators":["%s",]}`, loc),
		"missing comma":         fmt.Sprintf(`{"available_slots":1,"subscription_expiry":2,"locators":["%s" "%s"]}`, loc, loc),
		"negative slots":        fmt.Sprintf(`{"available_slots":-1,"subscription_expiry":2,"locators":["%s"]}`, loc),
		"float slots":           fmt.Sprintf(`{"available_slots":1.5,"subscription_expiry":2,"locators":["%s"]}`, loc),
		"exponent slots":        fmt.Sprintf(`{"available_slots":1e3,"subscription_expiry":2,"locators":["%s"]}`, loc),
		"slots over 32 bits":    fmt.Sprintf(`{"available_slots":4294967296,"subscription_expiry":2,"locators":["%s"]}`, loc),
		"slots 11 digits":       fmt.Sprintf(`{"available_slots":10000000000,"subscription_expiry":2,"locators":["%s"]}`, loc),
		"leading zero":          fmt.Sprintf(`{"available_slots":01,"subscription_expiry":2,"locators":["%s"]}`, loc),
		"string slots":          fmt.Sprintf(`{"available_slots":"1","subscription_expiry":2,"locators":["%s"]}`, loc),
		"bad extra literal":     `{"x":tru,` + ok + `}`,
		"bad extra number":      `{"x":1.2.3,` + ok + `}`,
		"bad extra escape":      `{"x":"\q",` + ok + `}`,
		"control char in extra": "{\"x\":\"a\x01\"," + ok + "}",
		"missing colon":         `{"available_slots" 1,"subscription_expiry":2,"locators":[]}`,
		"unquoted key":          `{available_slots:1}`,
		"deep nesting":          `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `,` + ok + `}`,
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			d := &subscriptionDecoder{maxLocators: DefaultMaxLocators}
			err := d.decodeStream(strings.NewReader(a), -1)
			if !errors.Is(err, ErrBadResponse) || errors.Is(err, ErrResponseTooLarge) || d.info != nil {
				t.Fatalf("%q: err = %v, info %v; want ErrBadResponse and nothing", a, err, d.info != nil)
			}
		})
	}
}

// TestSubscriptionBoundExact: exactly the bound's locators pass, one more does not.
func TestSubscriptionBoundExact(t *testing.T) {
	locs := randomLocators(t, 10)
	for _, max := range []int{10, 9} {
		body := rustAnswer(1, 2, locs)
		d := &subscriptionDecoder{maxLocators: max}
		err := d.decodeStream(bytes.NewReader(body), int64(len(body)))
		if max == 10 && (err != nil || len(d.info.Locators) != 10) {
			t.Fatalf("bound 10: %v", err)
		}
		if max == 9 && !errors.Is(err, ErrResponseTooLarge) {
			t.Fatalf("bound 9: err = %v, want ErrResponseTooLarge", err)
		}
	}
	c := New("127.0.0.1:1", teos.UserID{}, newUserKey(t), WithMaxLocators(5))
	if c.maxLocators != 5 {
		t.Fatalf("WithMaxLocators(5): bound %d", c.maxLocators)
	}
	if c := New("127.0.0.1:1", teos.UserID{}, newUserKey(t), WithMaxLocators(0)); c.maxLocators != DefaultMaxLocators {
		t.Fatalf("WithMaxLocators(0): bound %d, want the default", c.maxLocators)
	}
}

// TestSubscriptionAnswerCutIsRetried: an answer cut off by the transport (fewer bytes than its
// Content-Length) is a transient failure, retried; the retry's answer is the result.
func TestSubscriptionAnswerCutIsRetried(t *testing.T) {
	locs := randomLocators(t, 1000)
	body := rustAnswer(3, 4, locs)
	c, _, calls := subscriptionServer(t, func(w http.ResponseWriter, call int) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		if call == 1 {
			_, _ = w.Write(body[:len(body)/2])
			panic(http.ErrAbortHandler) // drop the connection mid-answer
		}
		_, _ = w.Write(body)
	})
	info, err := c.GetSubscriptionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Locators) != len(locs) || calls() != 2 {
		t.Fatalf("%d locators after %d requests, want %d after 2", len(info.Locators), calls(), len(locs))
	}
}

// FuzzSubscriptionDecoder: no input panics the decoder or gets past its bound, what it accepts
// is JSON, and what it returns is what the answer says (encoding it again decodes the same).
func FuzzSubscriptionDecoder(f *testing.F) {
	f.Add([]byte(`{"available_slots":1,"subscription_expiry":2,"locators":["00112233445566778899aabbccddeeff"]}`))
	f.Add([]byte(`{"locators":[],"x":{"a":[1,-2e3,"\u00e9",null]},"subscription_expiry":0,"available_slots":4294967295}`))
	f.Add([]byte(" {\"av\\u0061ilable_slots\" : 7 , \"subscription_expiry\":8,\"locators\":[\"00112233445566778899AABBCCDDEEFF\" ]}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const bound = 8
		d := &subscriptionDecoder{maxLocators: bound}
		if err := d.decodeStream(bytes.NewReader(in), int64(len(in))); err != nil {
			if d.info != nil || !errors.Is(err, ErrBadResponse) {
				t.Fatalf("err %v with info %v: want ErrBadResponse and nothing", err, d.info != nil)
			}
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted %q, which is not JSON", in)
		}
		if len(d.info.Locators) > bound {
			t.Fatalf("%d locators past the bound %d", len(d.info.Locators), bound)
		}
		again := &subscriptionDecoder{maxLocators: bound}
		out := rustAnswer(d.info.AvailableSlots, d.info.SubscriptionExpiry, d.info.Locators)
		if err := again.decodeStream(bytes.NewReader(out), -1); err != nil ||
			again.info.AvailableSlots != d.info.AvailableSlots || again.info.SubscriptionExpiry != d.info.SubscriptionExpiry ||
			!slices.Equal(again.info.Locators, d.info.Locators) {
			t.Fatalf("%q decoded as %+v, which encodes to %q and decodes as %+v, %v", in, d.info, out, again.info, err)
		}
	})
}

// TestSubscriptionContentLengthIsNotTrusted: a tower announcing a huge body and sending none
// of it makes the client reserve at most one block of locators, not what it announced.
func TestSubscriptionContentLengthIsNotTrusted(t *testing.T) {
	body := strings.NewReader(`{"available_slots":1,"subscription_expiry":2,"locators":["00112233445566778899aabbccddeeff"`)
	d := &subscriptionDecoder{maxLocators: DefaultMaxLocators}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := d.decodeStream(body, 35*int64(DefaultMaxLocators))
	runtime.ReadMemStats(&after)
	if err == nil || d.info != nil {
		t.Fatalf("err = %v, info %v; want an error for the cut answer and nothing", err, d.info != nil)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("allocated %d bytes for a 90-byte answer announcing %d", alloc, 35*int64(DefaultMaxLocators))
	}
}

// TestSubscriptionSlowAnswerNotCut: get_subscription_info grows with the user's appointments
// (35 bytes each), so over a slow link a big one takes longer than the HTTP client's timeout
// to arrive. The timeout bounds each silence of the answer, not its length: before, every try
// was cut at the timeout and started again from scratch, so such a user could never read it.
func TestSubscriptionSlowAnswerNotCut(t *testing.T) {
	locs := randomLocators(t, 20_000)
	body := rustAnswer(3, 4, locs) // 700 KB: 200 pieces, 10 ms apart, 2 s or more in all
	srv := pacedServer(t, body, len(body)/200+1, 10*time.Millisecond)
	const idle = time.Second
	c := New(srv.URL, teos.UserID{}, newUserKey(t), WithRetry(1, time.Millisecond), WithHTTPClient(&http.Client{Timeout: idle}))
	start := time.Now()
	info, err := c.GetSubscriptionInfo(t.Context())
	if err != nil || len(info.Locators) != len(locs) {
		t.Fatalf("slow answer (timeout %v, took %v): %v", idle, time.Since(start), err)
	}
	t.Logf("%d locators in %v with a %v timeout", len(locs), time.Since(start).Round(time.Millisecond), idle)

	// A tower that stops sending is still cut after the timeout, and that is transient.
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body[:100])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(stall.Close)
	c = New(stall.URL, teos.UserID{}, newUserKey(t), WithRetry(0, 0), WithHTTPClient(&http.Client{Timeout: 200 * time.Millisecond}))
	_, err = c.GetSubscriptionInfo(t.Context())
	t.Logf("stalled: %v", err)
	if err == nil || !IsTransient(err) {
		t.Fatalf("stalled answer: %v, IsTransient %v", err, IsTransient(err))
	}
}

// TestSubscriptionTrickleCut: an answer that never stops but trickles (10 bytes every 10 ms,
// 1 KB/s, under the 8 KiB/s floor) is cut once past the timeout, transiently: a hostile tower
// cannot hold the client forever by always sending a little.
func TestSubscriptionTrickleCut(t *testing.T) {
	body := rustAnswer(3, 4, randomLocators(t, 20_000)) // 700 KB: twelve minutes at that rate
	srv := pacedServer(t, body, 10, 10*time.Millisecond)
	c := New(srv.URL, teos.UserID{}, newUserKey(t), WithRetry(0, 0), WithHTTPClient(&http.Client{Timeout: 300 * time.Millisecond}))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := c.GetSubscriptionInfo(ctx)
	if !errors.Is(err, errIdle) || !IsTransient(err) || ctx.Err() != nil {
		t.Fatalf("trickled answer: %v (ctx %v), want cut by the client's bound", err, ctx.Err())
	}
}

// pacedServer answers every request with body (a JSON answer), piece bytes every gap.
func pacedServer(t *testing.T, body []byte, piece int, gap time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		for b := body; len(b) > 0; b = b[min(piece, len(b)):] {
			if _, err := w.Write(b[:min(piece, len(b))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(gap):
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}
