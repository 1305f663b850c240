package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/rustimport/rustfixture"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// olderLayout rewrites a store file as an older teos-go wrote it: version 2 had no hand-over
// bucket, version 1 no stored counts either (internal/store/store.go). store.Open upgrades
// such a file in place.
func olderLayout(t *testing.T, path string, version uint32) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if version < 3 {
			if err := tx.DeleteBucket([]byte("handovers")); err != nil {
				return err
			}
		}
		if version < 2 {
			if err := meta.Delete([]byte("counts")); err != nil {
				return err
			}
		}
		return meta.Put([]byte("version"), binary.BigEndian.AppendUint32(nil, version))
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
}

// newStoreFile writes a teos.db as a first start leaves it (a tower key, the last block), or
// an initialised store with nothing in it.
func newStoreFile(t *testing.T, path string, withData bool) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if withData {
		if err := s.AddTowerKey([32]byte{1}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetLastBlock(chainhash.Hash{2}, 150); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every file under root to its content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestImportRefusalWritesNothing: teosd --importrustteos over a store that has data refuses
// with one line and leaves teos.db byte-identical, whatever its layout version (checking it
// must not run the upgrade an ordinary start runs).
func TestImportRefusalWritesNothing(t *testing.T) {
	src := filepath.Join(t.TempDir(), "teos_db.sql3")
	if err := rustfixture.Write(src, &rustfixture.DB{Keys: [][32]byte{{7}}, Users: map[teos.UserID]store.UserInfo{}}); err != nil {
		t.Fatal(err)
	}
	for _, version := range []uint32{1, 2, 0} { // 0: as this binary writes it
		dataDir := t.TempDir()
		dbPath := filepath.Join(dataDir, "regtest", "teos.db")
		newStoreFile(t, dbPath, true)
		if version != 0 {
			olderLayout(t, dbPath, version)
		}
		before := snapshot(t, dataDir) // teos.db, and the locator filter its Close saved
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"--datadir", dataDir, "--btcnetwork", "regtest",
			"--btcrpcuser", "u", "--btcrpcpassword", "p", "--importrustteos", src}, &stdout, &stderr)
		var errs []string
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(l, "level=ERROR") {
				errs = append(errs, l)
			}
		}
		if code != 1 || len(errs) != 1 || !strings.Contains(errs[0], "already has data (1 tower keys, 0 users") {
			t.Fatalf("v%d: exit %d, want 1 with one error line about the data:\n%s", version, code, stderr.String())
		}
		after := snapshot(t, dataDir)
		if after["regtest/teos.db"] != before["regtest/teos.db"] {
			t.Fatalf("v%d: the refused import changed teos.db", version)
		}
		if !maps.Equal(after, before) {
			t.Fatalf("v%d: the refused import changed the data dir: %v, before %v", version, slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
		}
	}
}

// TestCheckNoDataOlderEmptyStore: an older store with nothing in it does not stop the import
// (the import then replaces it), and asking leaves it as it was too.
func TestCheckNoDataOlderEmptyStore(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "teos.db")
	newStoreFile(t, dbPath, false)
	olderLayout(t, dbPath, 1)
	before, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkNoData(dbPath); err != nil {
		t.Fatal(err)
	}
	if after, err := os.ReadFile(dbPath); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("checkNoData changed teos.db (%v)", err)
	}
}

// TestImportWithPostgresRefused: with database_url the tower never reads teos.db, so an
// import there would leave rust-teos's users facing a new tower key. Both forms refuse with
// one line before anything is written or dialled (the URL points nowhere).
func TestImportWithPostgresRefused(t *testing.T) {
	src := filepath.Join(t.TempDir(), "teos_db.sql3")
	if err := rustfixture.Write(src, &rustfixture.DB{Keys: [][32]byte{{7}}, Users: map[teos.UserID]store.UserInfo{}}); err != nil {
		t.Fatal(err)
	}
	auto := t.TempDir()
	if err := os.MkdirAll(filepath.Join(auto, "regtest"), 0o700); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(auto, "regtest", "teos_db.sql3"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dataDir string
		extra         []string
		want          string
	}{
		{"automatic", auto, nil, "database_url is set and the import cannot write to PostgreSQL"},
		{"explicit", t.TempDir(), []string{"--importrustteos", src}, "--importrustteos imports into teos.db"},
	} {
		before := snapshot(t, tc.dataDir)
		var stdout, stderr bytes.Buffer
		args := append([]string{"--datadir", tc.dataDir, "--btcnetwork", "regtest", "--btcrpcuser", "u",
			"--btcrpcpassword", "p", "--databaseurl", "postgres://teos@127.0.0.1:1/teos"}, tc.extra...)
		code := run(context.Background(), args, &stdout, &stderr)
		var errs []string
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(l, "level=ERROR") {
				errs = append(errs, l)
			}
		}
		if code != 1 || len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
			t.Fatalf("%s: exit %d, want 1 with one error line containing %q:\n%s", tc.name, code, tc.want, stderr.String())
		}
		if after := snapshot(t, tc.dataDir); !maps.Equal(after, before) {
			t.Fatalf("%s: the refusal changed the data dir: %v, before %v", tc.name, slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
		}
	}
}

// TestStoreBesideRustTeosDatabase: rust-teos's database moved into a data dir where a teosd
// had already started (a trial run made teos.db with a tower key of its own) was ignored, and
// teosd served rust-teos's users with that other key. Such a start is refused now, with one
// line and nothing written; a teos.db imported from that database (it holds rust-teos's key,
// also after --overwritekey) starts as before, and an empty teos.db gets no key of its own
// minted (the import replaces it; here it stops at the unreachable bitcoind first).
func TestStoreBesideRustTeosDatabase(t *testing.T) {
	// Keys with hex letters: an all-digit hex string would be stored as a number (the column's
	// INT affinity), which rust-teos's keys practically never are.
	rustKey := [32]byte{0xab, 7}
	for _, tc := range []struct {
		name    string
		keys    [][32]byte // teos.db's; nil: a zero-byte teos.db
		refused bool
	}{
		{"another tower", [][32]byte{{0xab, 1}}, true},
		{"imported", [][32]byte{rustKey}, false},
		{"imported, then --overwritekey", [][32]byte{rustKey, {0xab, 3}}, false},
		{"empty file", nil, false},
	} {
		dataDir := t.TempDir()
		netDir := filepath.Join(dataDir, "regtest")
		if err := os.MkdirAll(netDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := rustfixture.Write(filepath.Join(netDir, "teos_db.sql3"),
			&rustfixture.DB{Keys: [][32]byte{{0xab, 5}, rustKey}, Users: map[teos.UserID]store.UserInfo{}}); err != nil {
			t.Fatal(err)
		}
		dbPath := filepath.Join(netDir, "teos.db")
		if tc.keys == nil {
			if err := os.WriteFile(dbPath, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			s, err := store.Open(dbPath, &store.Options{NoLocatorFilter: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.keys {
				if err := s.AddTowerKey(k); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		before := snapshot(t, dataDir)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"--datadir", dataDir, "--btcnetwork", "regtest", "--btcrpcuser", "u",
			"--btcrpcpassword", "p", "--btcrpcconnect", "127.0.0.1", "--btcrpcport", "1"}, &stdout, &stderr)
		var errs []string
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(l, "level=ERROR") {
				errs = append(errs, l)
			}
		}
		if code != 1 || len(errs) != 1 {
			t.Fatalf("%s: exit %d, want 1 with one error line (bitcoind is unreachable):\n%s", tc.name, code, stderr.String())
		}
		refused := strings.Contains(errs[0], "is not the tower of rust-teos's database")
		if refused != tc.refused {
			t.Fatalf("%s: refused %v, want %v:\n%s", tc.name, refused, tc.refused, stderr.String())
		}
		if tc.refused {
			if after := snapshot(t, dataDir); !maps.Equal(after, before) {
				t.Fatalf("%s: the refusal changed the data dir: %v, before %v", tc.name, slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
			}
		}
		if tc.keys == nil {
			if keys, err := store.InspectTowerKeys(dbPath); err != nil || len(keys) != 0 {
				t.Fatalf("%s: teos.db now has %d tower keys (%v): a key of its own was minted", tc.name, len(keys), err)
			}
		}
	}
}
