package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/pkg/teos"
)

// A client killed while writing a receipt leaves a partial last line: it is dropped, and the
// lines after it are appended where it was.
func TestJournalDropsPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), uploadsDir, "x.ndjson")
	j, err := openJournal(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{3, 1} {
		if err := j.add(journalLine{Index: i, Locator: "l", UserSignature: "u", TowerSignature: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"index":7,"locator":"l","start_blo`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	j, err = openJournal(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.done) != 2 || j.done[3].Locator != "l" || j.done[1].TowerSignature != "s" {
		t.Fatalf("reopened journal holds %v", j.done)
	}
	if err := j.add(journalLine{Index: 7}); err != nil {
		t.Fatal(err)
	}
	j.close()
	j, err = openJournal(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.done) != 3 {
		t.Fatalf("after appending past the partial line: %v", j.done)
	}
	j.close()
	// An index past the file's items (another file, same name) is not trusted.
	j2, err := openJournal(path, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.close()
	if _, ok := j2.done[7]; ok {
		t.Fatal("out-of-range index kept")
	}
}

// A rust-teos v0.2 tower answers 404 to GET /info: upload says so at once instead of
// retrying for --retry-for.
func TestUploadToTowerWithoutExtension(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	var infos atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/info" {
			infos.Add(1)
		}
		http.NotFound(w, r) // warp's answer for a route it does not have
	}))
	t.Cleanup(srv.Close)
	txid := chainhash.DoubleHashH([]byte{1})
	file := filepath.Join(t.TempDir(), "appts.json")
	b, _ := json.Marshal([]map[string]any{{"commitment_txid": txid.String(), "penalty_rawtx": penaltyHex(t, 1)}})
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// The deadline only keeps a looping client from hanging the test.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"--datadir", t.TempDir(), "--tower", srv.URL, "--towerid", towerID,
		"upload", "--file", file, "--retry-for", "1h"}, &out, &errOut, false)
	if ctx.Err() != nil || code != exitFailure || !strings.Contains(errOut.String(), "add_appointments extension") ||
		strings.Contains(errOut.String(), "retrying") {
		t.Fatalf("exit %d, ctx %v, stderr %s", code, ctx.Err(), errOut.String())
	}
	if n := infos.Load(); n != 1 {
		t.Fatalf("%d GET /info, want 1", n)
	}
}

// Two uploads of one file to one tower at once would write over each other's journal lines;
// the second is refused while the first runs, and may go once it is done.
func TestJournalSingleWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), uploadsDir, "x.ndjson")
	j1, err := openJournal(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	j2, err := openJournal(path, 10)
	if err == nil {
		// What the two writers leave behind on main: each writes at its own offset.
		_ = j1.add(journalLine{Index: 1, Locator: "l", UserSignature: "u", TowerSignature: "s"})
		_ = j2.add(journalLine{Index: 2, Locator: "l", UserSignature: "u", TowerSignature: "s"})
		_ = j1.close()
		_ = j2.close()
		j, _ := openJournal(path, 10)
		t.Fatalf("second writer admitted; receipts kept: %v", j.done)
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	if err := j1.add(journalLine{Index: 1, Locator: "l", UserSignature: "u", TowerSignature: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := j1.close(); err != nil {
		t.Fatal(err)
	}
	j3, err := openJournal(path, 10)
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	defer j3.close()
	if _, ok := j3.done[1]; !ok || len(j3.done) != 1 {
		t.Fatalf("journal %v", j3.done)
	}
}
