package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// batchOf builds an /add_appointments body of n appointments signed by u.
func batchOf(u user, n int) (string, []teos.Appointment) {
	var b strings.Builder
	b.WriteString(`{"appointments":[`)
	appts := make([]teos.Appointment, n)
	for i := range n {
		var loc teos.Locator
		copy(loc[:], fmt.Sprintf("loc-%012d", i))
		appts[i] = teos.Appointment{Locator: loc, EncryptedBlob: []byte(fmt.Sprintf("blob %d", i)), ToSelfDelay: 42}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(addBody(appts[i], u.signAdd(appts[i])))
	}
	b.WriteString(`]}`)
	return b.String(), appts
}

func zstdBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// postRaw sends body with the given headers and returns status, Content-Type and body.
func (s *stack) postRaw(t *testing.T, path string, body []byte, hdr map[string]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(got)
}

func TestCompressedUploadsAnswerAsPlain(t *testing.T) {
	plain := newStackWith(t, stackConfig{slots: 100, duration: testDuration, height: testHeight})
	alice := newUser("alice")
	plain.register(t, alice)
	body, _ := batchOf(alice, 50)
	wantStatus, _, want := plain.postRaw(t, "/add_appointments", []byte(body), nil)
	if wantStatus != http.StatusOK {
		t.Fatalf("plain batch: %d %s", wantStatus, want)
	}
	for _, c := range []struct {
		encoding string
		body     []byte
	}{{"zstd", zstdBytes(t, []byte(body))}, {"gzip", gzipBytes(t, []byte(body))}} {
		s := newStackWith(t, stackConfig{slots: 100, duration: testDuration, height: testHeight})
		s.register(t, alice)
		status, _, got := s.postRaw(t, "/add_appointments", c.body, map[string]string{"Content-Encoding": c.encoding})
		if status != http.StatusOK || got != want {
			t.Fatalf("%s (%d bytes for %d): %d %s\nwant %s", c.encoding, len(c.body), len(body), status, got, want)
		}
		if a, b := plain.snapshot(t), s.snapshot(t); !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: store differs from the plain upload's", c.encoding)
		}
	}
}

func TestCompressedUploadsRefused(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)
	// 50 MB of zeros, a few kB once compressed: refused once 2.2 MB have come out.
	huge := make([]byte, 50<<20)
	before := s.snapshot(t)
	for _, c := range []struct {
		name, encoding string
		body           []byte
		status         int
		want           string
	}{
		{"zstd bomb", "zstd", zstdBytes(t, huge), http.StatusRequestEntityTooLarge, "The request payload is too large"},
		{"gzip bomb", "gzip", gzipBytes(t, huge), http.StatusRequestEntityTooLarge, "The request payload is too large"},
		{"corrupt zstd", "zstd", []byte("this is not a zstd frame at all"), http.StatusBadRequest, `"error_code":6}`},
		{"corrupt gzip", "gzip", []byte("neither is this gzip"), http.StatusBadRequest, `"error_code":6}`},
		{"truncated zstd", "zstd", zstdBytes(t, []byte(strings.Repeat(`{"appointments":[]}`, 1000)))[:40], http.StatusBadRequest, `"error_code":6}`},
		{"unknown encoding", "br", []byte("{}"), http.StatusUnsupportedMediaType, "The request's content-type is not supported"},
	} {
		if len(c.body) > 2_200_000 {
			t.Fatalf("%s: the compressed body (%d bytes) is itself over the limit", c.name, len(c.body))
		}
		status, _, got := s.postRaw(t, "/add_appointments", c.body, map[string]string{"Content-Encoding": c.encoding})
		if status != c.status || !strings.Contains(got, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, status, got, c.status, c.want)
		}
	}
	if after := s.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Fatal("a refused compressed upload changed the store")
	}
}

type streamLine struct {
	Index     *int    `json:"index"`
	Locator   string  `json:"locator"`
	Start     uint32  `json:"start_block"`
	Signature string  `json:"signature"`
	Error     *string `json:"error"`
	ErrorCode *int    `json:"error_code"`
}

func TestStreamedUpload(t *testing.T) {
	s := newStackWith(t, stackConfig{slots: 1000, duration: testDuration, height: testHeight})
	alice := newUser("alice")
	s.register(t, alice)
	body, appts := batchOf(alice, 250)
	// Item 7 is malformed: the inspector refuses it, its line comes at once.
	bad := `{"appointment":{"locator":"00","encrypted_blob":"00","to_self_delay":1},"signature":"x"}`
	i7 := addBody(appts[7], alice.signAdd(appts[7]))
	body = strings.Replace(body, i7, bad, 1)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/add_appointments", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	seen := map[int]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l streamLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Index == nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		i := *l.Index
		if seen[i] || i < 0 || i >= len(appts) {
			t.Fatalf("line for item %d repeated or out of range", i)
		}
		seen[i] = true
		if i == 7 {
			if l.ErrorCode == nil || *l.ErrorCode != teos.ErrCodeWrongFieldSize {
				t.Fatalf("malformed item 7: %s", sc.Text())
			}
			continue
		}
		userSig := alice.signAdd(appts[i])
		if l.Locator != appts[i].Locator.String() || !wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(userSig, l.Start), l.Signature, s.towerID) {
			t.Fatalf("item %d: bad receipt %s", i, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(appts) {
		t.Fatalf("%d lines for %d items", len(seen), len(appts))
	}
	if _, n, _, _ := s.store.Counts(); n != len(appts)-1 {
		t.Fatalf("%d appointments stored, want %d", n, len(appts)-1)
	}
}
