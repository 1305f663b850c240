package rustimport_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/rustimport"
	"github.com/teos-go/teos/internal/store"
)

// TestImportMutatedFiles imports copies of a rust-teos database with random bytes changed (a
// seeded generator, so a failure replays; Go's fuzzer is too slow here, as it instruments the
// whole SQLite engine). No panic; an error is one line with nothing written; a success leaves
// a store whose counts are the summary's.
func TestImportMutatedFiles(t *testing.T) {
	n := 100
	if testing.Short() {
		n = 20
	}
	base := readFile(t, writeFixture(t, t.TempDir(), fixture(t)))
	r := rand.New(rand.NewPCG(10, 2026))
	refused := 0
	for i := range n {
		data := append([]byte(nil), base...)
		for range 1 + r.IntN(8) {
			data[r.IntN(len(data))] = byte(r.IntN(256))
		}
		if r.IntN(10) == 0 {
			data = data[:r.IntN(len(data))]
		}
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "teos_db.sql3"), data)
		dest := filepath.Join(dir, "teos.db")
		anyHeight := func(context.Context, chainhash.Hash) (uint32, error) { return 500, nil }
		sum, err := rustimport.Import(t.Context(), rustimport.Config{Source: filepath.Join(dir, "teos_db.sql3"), Dest: dest, BlockHeight: anyHeight})
		if err != nil {
			refused++
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("mutation %d: error is not one line: %q", i, err)
			}
			if names := dirNames(t, dir); len(names) != 1 {
				t.Fatalf("mutation %d: files after a refusal: %v (%v)", i, names, err)
			}
			continue
		}
		st, err := store.Open(dest, nil)
		if err != nil {
			t.Fatal(err)
		}
		users, watched, trackers, err := st.Counts()
		st.Close()
		if err != nil || users != sum.Users || watched+trackers != sum.Appointments || trackers != sum.Trackers {
			t.Fatalf("mutation %d: store counts %d/%d/%d (%v), summary %+v", i, users, watched, trackers, err, sum)
		}
	}
	t.Logf("%d of %d mutated files refused", refused, n)
}
