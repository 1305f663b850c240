package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/client"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// countingProxy forwards to a tower and logs, in arrival order, the locator of every item of
// every /add_appointments request that reached it: what the tower was sent.
type countingProxy struct {
	url   string
	mu    sync.Mutex
	log   []string
	bytes int // request bytes of /add_appointments bodies, as sent
	bad   error
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // 502s while the tower restarts are expected
	p := &countingProxy{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/add_appointments") {
			raw, err := io.ReadAll(r.Body)
			if err != nil {
				return // the client went away before sending it all: nothing reached the tower
			}
			p.count(raw, r.Header.Get("Content-Encoding"))
			r.Body = io.NopCloser(bytes.NewReader(raw))
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.url = "http://" + lis.Addr().String()
	return p
}

func (p *countingProxy) count(raw []byte, encoding string) {
	sent := len(raw)
	var err error
	switch encoding {
	case "zstd":
		var d *zstd.Decoder
		if d, err = zstd.NewReader(nil); err == nil {
			raw, err = d.DecodeAll(raw, nil)
			d.Close()
		}
	case "gzip":
		var r *gzip.Reader
		if r, err = gzip.NewReader(bytes.NewReader(raw)); err == nil {
			raw, err = io.ReadAll(r)
		}
	}
	var body struct {
		Appointments []struct {
			Appointment struct {
				Locator string `json:"locator"`
			} `json:"appointment"`
		} `json:"appointments"`
	}
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += sent
	if err != nil && p.bad == nil {
		p.bad = fmt.Errorf("proxy could not read an upload (%s): %w", encoding, err)
	}
	for _, a := range body.Appointments {
		p.log = append(p.log, a.Appointment.Locator)
	}
}

// sentBytes is how many body bytes of /add_appointments requests reached the proxy.
func (p *countingProxy) sentBytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

func (p *countingProxy) received() ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...), p.bad
}

// penaltyFile writes n appointments for teos-client's --file: a fresh commitment txid and a
// small valid penalty transaction each.
func penaltyFile(t *testing.T, n int) (string, []teos.Appointment) {
	t.Helper()
	type entry struct {
		CommitmentTxID string `json:"commitment_txid"`
		PenaltyRawTx   string `json:"penalty_rawtx"`
	}
	entries := make([]entry, n)
	appts := make([]teos.Appointment, n)
	for i := range entries {
		var txid chainhash.Hash
		if _, err := rand.Read(txid[:]); err != nil {
			t.Fatal(err)
		}
		tx := wire.NewMsgTx(2)
		tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&txid, 0), nil, [][]byte{bytes.Repeat([]byte{1}, 72), bytes.Repeat([]byte{2}, 33)}))
		tx.AddTxOut(wire.NewTxOut(int64(1000+i), append([]byte{0, 20}, txid[:20]...)))
		var buf bytes.Buffer
		if err := tx.Serialize(&buf); err != nil {
			t.Fatal(err)
		}
		entries[i] = entry{txid.String(), hex.EncodeToString(buf.Bytes())}
		a, err := client.NewAppointment(txid, tx, 42)
		if err != nil {
			t.Fatal(err)
		}
		appts[i] = a
	}
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "appointments.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, appts
}

// journalIndices reads teos-client's receipt journals in dataDir: index -> line.
func journalIndices(t *testing.T, dataDir string) map[int]map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dataDir, "uploads", "*.ndjson"))
	out := map[int]map[string]any{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue // a partial last line
			}
			if i, ok := l["index"].(float64); ok {
				out[int(i)] = l
			}
		}
	}
	return out
}

// TestResumableUpload uploads 20,000 appointments with teos-client upload (streamed,
// compressed batches) through a counting proxy, and interrupts it three ways: the client
// SIGKILLed, the tower SIGKILLed and restarted under a running client, the client SIGKILLed
// again. Every run resumes from the receipt journal: in the end every receipt verifies, the
// tower holds all 20,000, and no item acknowledged before an interruption reached the tower
// again. Then one appointment is deleted and the refund and deletion receipt checked.
func TestResumableUpload(t *testing.T) {
	total := 20_000
	if raceEnabled { // every signature costs ten times more: same story, a tenth of the items
		total = 2_000
	}
	first, second := total/5, 3*total/5 // receipts kept at the two client kills
	node := startNode(t)
	tw := newTower(t, node, fmt.Sprintf("subscription_slots = %d\n", total))
	tw.start()
	proxy := newCountingProxy(t, tw.apiURL)
	file, appts := penaltyFile(t, total)
	bin, err := teosClientBin()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "client")
	base := []string{"--datadir", dataDir, "--tower", proxy.url}
	runCLI := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(t.Context(), bin, append(append([]string{}, base...), args...)...)
		btcdtest.DieWithParent(cmd, syscall.SIGKILL)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("teos-client %v: %w\n%s", args, err, stderr.String())
		}
		return out, nil
	}
	if _, err := runCLI("--towerid", tw.id.String(), "register"); err != nil {
		t.Fatal(err)
	}

	// upload starts teos-client upload and returns it with a channel closed when it exits.
	upload := func() (*exec.Cmd, chan error, *bytes.Buffer) {
		cmd := exec.Command(bin, append(append([]string{}, base...), "upload", "--file", file, "--retry-for", "2m")...)
		btcdtest.DieWithParent(cmd, syscall.SIGKILL)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		return cmd, done, &out
	}
	waitJournal := func(atLeast int, done chan error, out *bytes.Buffer) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for journalLines(dataDir) < atLeast {
			select {
			case err := <-done:
				t.Fatalf("teos-client exited before %d receipts: %v\n%s", atLeast, err, out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d receipts after 5 minutes", atLeast)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	type cut struct {
		acked map[string]bool // locators acknowledged when the client died
		seen  int             // proxy log length then
	}
	var cuts []cut
	killClient := func(cmd *exec.Cmd, done chan error) {
		_ = cmd.Process.Kill()
		<-done
		got, _ := proxy.received()
		c := cut{acked: map[string]bool{}, seen: len(got)}
		for i := range journalIndices(t, dataDir) {
			c.acked[appts[i].Locator.String()] = true
		}
		cuts = append(cuts, c)
	}

	cmd, done, out := upload()
	waitJournal(first, done, out)
	killClient(cmd, done)
	t.Logf("client killed with %d receipts kept", len(cuts[0].acked))

	cmd, done, out = upload()
	waitJournal((first+second)/2, done, out)
	tw.kill() // the tower dies under a running client, which retries until it is back
	tw.start()
	waitJournal(second, done, out)
	killClient(cmd, done)
	t.Logf("client killed again with %d receipts kept (tower restarted in between)", len(cuts[1].acked))

	res, err := runCLI("upload", "--file", file)
	if err != nil {
		t.Fatal(err)
	}
	var summary struct {
		Accepted, Failed, Resumed, Sent int
	}
	if err := json.Unmarshal(res, &summary); err != nil || summary.Accepted != total || summary.Failed != 0 {
		t.Fatalf("last run printed %s (%v)", res, err)
	}

	// Every receipt in the journal is the tower's, for that item, as the user signed it.
	userKey := clientUserKey(t, dataDir)
	journal := journalIndices(t, dataDir)
	if len(journal) != total {
		t.Fatalf("%d receipts kept, want %d", len(journal), total)
	}
	for i, l := range journal {
		userSig, _ := l["user_signature"].(string)
		towerSig, _ := l["tower_signature"].(string)
		start, _ := l["start_block"].(float64)
		if l["locator"] != appts[i].Locator.String() ||
			wtcrypto.SignMessage(appts[i].SignedBytes(), userKey) != userSig ||
			!wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(userSig, uint32(start)), towerSig, tw.id) {
			t.Fatalf("receipt %d does not verify: %v", i, l)
		}
	}

	// What the tower was sent: everything, and nothing acknowledged before a cut again.
	got, err := proxy.received()
	if err != nil {
		t.Fatal(err)
	}
	times := map[string]int{}
	for _, l := range got {
		times[l]++
	}
	for _, a := range appts {
		if times[a.Locator.String()] == 0 {
			t.Fatalf("appointment %s never reached the tower", a.Locator)
		}
	}
	for k, c := range cuts {
		for _, l := range got[c.seen:] {
			if c.acked[l] {
				t.Fatalf("appointment %s was acknowledged before interruption %d and sent again", l, k+1)
			}
		}
	}
	t.Logf("tower received %d items for %d appointments (%d re-sent: in flight, unacknowledged, at an interruption)",
		len(got), total, len(got)-total)

	// The tower holds them all, and deleting one gives its slot back with a signed receipt.
	var sub struct {
		AvailableSlots uint32   `json:"available_slots"`
		Locators       []string `json:"locators"`
	}
	res, err = runCLI("get_subscription_info")
	if err != nil || json.Unmarshal(res, &sub) != nil || len(sub.Locators) != total || sub.AvailableSlots != 0 {
		t.Fatalf("get_subscription_info: %d locators, %d slots, %v", len(sub.Locators), sub.AvailableSlots, err)
	}
	loc := appts[123].Locator
	res, err = runCLI("delete", loc.String())
	if err != nil {
		t.Fatal(err)
	}
	var del struct {
		Locator        string `json:"locator"`
		DeletionBlock  uint32 `json:"deletion_block"`
		Signature      string `json:"signature"`
		UserSignature  string `json:"user_signature"`
		AvailableSlots uint32 `json:"available_slots"`
	}
	if err := json.Unmarshal(res, &del); err != nil || del.Locator != loc.String() || del.AvailableSlots != 1 ||
		!wtcrypto.VerifySignature(teos.DeletionReceiptBytes(del.UserSignature, del.DeletionBlock), del.Signature, tw.id) {
		t.Fatalf("delete printed %s (%v)", res, err)
	}
	if _, err := runCLI("delete", loc.String()); err == nil || !strings.Contains(err.Error(), `"error_code":36`) {
		t.Fatalf("second delete: %v, want not found (36)", err)
	}
	tw.stop()
}

// journalLines counts the complete lines of teos-client's journals, cheaply.
func journalLines(dataDir string) int {
	files, _ := filepath.Glob(filepath.Join(dataDir, "uploads", "*.ndjson"))
	n := 0
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		n += bytes.Count(raw, []byte{'\n'})
	}
	return n
}

// clientUserKey reads teos-client's user key from its data dir.
func clientUserKey(t *testing.T, dataDir string) *btcec.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "user_sk"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := btcec.PrivKeyFromBytes(b)
	return k
}

// TestUploadWire10k uploads the same kind of 10,000 appointments (encrypted ~120-byte
// penalties, random as any ciphertext) three ways to one tower, each through a counting
// proxy, and logs the request bytes and the time: batches uncompressed, batches with zstd,
// and streamed zstd batches as teos-client upload sends them. It asserts every receipt and
// that compression never sent more bytes; the figures are for docs/PERFORMANCE-UPLOADS.md.
func TestUploadWire10k(t *testing.T) {
	if raceEnabled {
		// A measurement: under -race it would take minutes and mean nothing; compression and
		// streaming are checked under -race by internal/api and TestResumableUpload.
		t.Skip("measurement; run without -race")
	}
	const total = 10_000
	node := startNode(t)
	tw := newTower(t, node, fmt.Sprintf("subscription_slots = %d\n", total))
	tw.start()
	ctx := t.Context()
	bytesOf := map[string]int{}
	for _, mode := range []string{"plain", "zstd", "gzip", "stream+zstd"} {
		proxy := newCountingProxy(t, tw.apiURL)
		_, appts := penaltyFile(t, total)
		enc := client.EncodingZstd
		switch mode {
		case "plain":
			enc = client.EncodingNone
		case "gzip":
			enc = client.EncodingGzip
		}
		cl := client.New(proxy.url, tw.id, userKey(t), client.WithCompression(enc))
		if _, err := cl.Register(ctx); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		ok := 0
		if mode == "stream+zstd" {
			idxs := make([]int, total)
			for i := range idxs {
				idxs[i] = i
			}
			err := cl.Upload(ctx, appts, idxs, func(r client.UploadResult) {
				if r.Err == nil && r.Receipt != nil {
					ok++
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		} else {
			for _, r := range client.SendMany(ctx, []*client.Tower{cl}, appts, client.SendOptions{Concurrency: 1}) {
				if r.Err == nil && r.Receipt != nil {
					ok++
				}
			}
		}
		took := time.Since(begin)
		if ok != total {
			t.Fatalf("%s: %d of %d receipts", mode, ok, total)
		}
		bytesOf[mode] = proxy.sentBytes()
		t.Logf("%-12s %9d request bytes (%3.0f%% of plain) in %v, %.0f appointments/s", mode, bytesOf[mode],
			100*float64(bytesOf[mode])/float64(bytesOf["plain"]), took.Round(time.Millisecond), float64(total)/took.Seconds())
	}
	if bytesOf["zstd"] >= bytesOf["plain"] || bytesOf["gzip"] >= bytesOf["plain"] {
		t.Fatalf("compression did not shrink the upload: %v", bytesOf)
	}
	tw.stop()
}
