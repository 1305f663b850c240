package rustimport_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/durable/durabletest"
	"github.com/teos-go/teos/internal/rustimport"
	"github.com/teos-go/teos/internal/rustimport/rustfixture"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

func random(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// serializedTx is a one-input, one-output transaction as consensus bytes.
func serializedTx(t testing.TB, witness bool) ([]byte, chainhash.Hash) {
	t.Helper()
	tx := wire.NewMsgTx(2)
	var prev chainhash.Hash
	copy(prev[:], random(t, 32))
	in := wire.NewTxIn(wire.NewOutPoint(&prev, 1), nil, nil)
	if witness {
		in.Witness = wire.TxWitness{random(t, 72), random(t, 33)}
	}
	tx.AddTxIn(in)
	tx.AddTxOut(wire.NewTxOut(12345, random(t, 22)))
	var b bytes.Buffer
	if err := tx.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), tx.TxHash()
}

// fixture is a rust-teos database with three keys, three users (one with no appointment),
// five appointments (two sharing a locator) and two trackers, one confirmed.
func fixture(t testing.TB) *rustfixture.DB {
	t.Helper()
	db := &rustfixture.DB{Users: map[teos.UserID]store.UserInfo{}}
	for range 3 {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		db.Keys = append(db.Keys, [32]byte(k.Serialize()))
	}
	var users []*btcec.PrivateKey
	for i := range 3 {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, k)
		db.Users[teos.UserIDFromPubKey(k.PubKey())] = store.UserInfo{
			AvailableSlots: uint32(9990 + i), SubscriptionStart: uint32(200 + i), SubscriptionExpiry: uint32(4520 + i)}
	}
	appt := func(owner *btcec.PrivateKey, loc teos.Locator, blobLen int, start uint32) *store.Appointment {
		a := &store.Appointment{
			Appointment: teos.Appointment{Locator: loc, EncryptedBlob: random(t, blobLen), ToSelfDelay: 144},
			UserID:      teos.UserIDFromPubKey(owner.PubKey()),
			StartBlock:  start,
		}
		a.UserSignature = wtcrypto.SignMessage(a.Appointment.SignedBytes(), owner)
		db.Appointments = append(db.Appointments, a)
		return a
	}
	shared := teos.Locator(random(t, 16))
	appt(users[0], shared, 100, 210)
	appt(users[1], shared, 2500, 211)
	appt(users[0], teos.Locator(random(t, 16)), 300, 212)
	for i, witness := range []bool{false, true} {
		dispute, disputeID := serializedTx(t, witness)
		penalty, penaltyID := serializedTx(t, witness)
		a := appt(users[i], teos.NewLocator(disputeID), 200, 213)
		db.Trackers = append(db.Trackers, &store.Tracker{
			UUID: a.UUID(), DisputeTx: dispute, PenaltyTx: penalty, DisputeTxID: disputeID, PenaltyTxID: penaltyID,
			Height: uint32(300 + i), Confirmed: i == 1,
		})
	}
	last := chainhash.Hash(random(t, 32))
	db.LastBlock = &last
	return db
}

func writeFixture(t testing.TB, dir string, db *rustfixture.DB) string {
	t.Helper()
	path := filepath.Join(dir, "teos_db.sql3")
	if err := rustfixture.Write(path, db); err != nil {
		t.Fatal(err)
	}
	return path
}

// heights answers BlockHeight for the fixture's last block only.
func heights(db *rustfixture.DB, h uint32) func(context.Context, chainhash.Hash) (uint32, error) {
	return func(_ context.Context, hash chainhash.Hash) (uint32, error) {
		if db.LastBlock == nil || hash != *db.LastBlock {
			return 0, fmt.Errorf("block %s not found", hash)
		}
		return h, nil
	}
}

func fileHash(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// checkImported compares every record of the store at path with db.
func checkImported(t *testing.T, path string, db *rustfixture.DB, height uint32) {
	t.Helper()
	st, err := store.Open(path, &store.Options{NoLocatorFilter: true}) // no .locfilter beside it: the test lists the files
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	keys, err := st.TowerKeys()
	if err != nil || !reflect.DeepEqual(keys, db.Keys) {
		t.Fatalf("tower keys %x (%v), want %x", keys, err, db.Keys)
	}
	active, ok, err := st.TowerKey()
	if err != nil || !ok || active != db.Keys[len(db.Keys)-1] {
		t.Fatalf("active key %x %v %v, want the newest", active, ok, err)
	}

	ids, err := st.Users()
	if err != nil || len(ids) != len(db.Users) {
		t.Fatalf("users %v (%v), want %d", ids, err, len(db.Users))
	}
	for id, want := range db.Users {
		got, ok, err := st.User(id)
		if err != nil || !ok || got != want {
			t.Fatalf("user %s: %+v %v %v, want %+v", id, got, ok, err, want)
		}
	}

	wantAppts := map[teos.UUID]*store.Appointment{}
	for _, a := range db.Appointments {
		wantAppts[a.UUID()] = a
	}
	wantTrackers := map[teos.UUID]*store.Tracker{}
	for _, tr := range db.Trackers {
		wantTrackers[tr.UUID] = tr
	}
	n := 0
	err = st.ForEachAppointment(nil, func(a *store.Appointment, tr *store.Tracker) error {
		n++
		want := wantAppts[a.UUID()]
		if !reflect.DeepEqual(a, want) {
			return fmt.Errorf("appointment %s: %+v, want %+v", a.UUID(), a, want)
		}
		if wt := wantTrackers[a.UUID()]; !reflect.DeepEqual(tr, wt) {
			return fmt.Errorf("tracker of %s: %+v, want %+v", a.UUID(), tr, wt)
		}
		return nil
	})
	if err != nil || n != len(db.Appointments) {
		t.Fatalf("appointments: %d seen, want %d: %v", n, len(db.Appointments), err)
	}
	for _, a := range db.Appointments {
		byLoc, err := st.AppointmentsByLocator(a.Locator)
		if err != nil || !slices.ContainsFunc(byLoc, func(x *store.Appointment) bool { return reflect.DeepEqual(x, a) }) {
			t.Fatalf("locator index lacks %s: %v", a.UUID(), err)
		}
	}
	users, watched, trackers, err := st.Counts()
	if err != nil || users != len(db.Users) || watched != len(db.Appointments)-len(db.Trackers) || trackers != len(db.Trackers) {
		t.Fatalf("counts %d/%d/%d (%v)", users, watched, trackers, err)
	}

	hash, h, ok, err := st.LastBlock()
	switch {
	case err != nil:
		t.Fatal(err)
	case db.LastBlock == nil && ok:
		t.Fatalf("last block %s set, rust-teos had none", hash)
	case db.LastBlock != nil && (!ok || hash != *db.LastBlock || h != height):
		t.Fatalf("last block %s@%d %v, want %s@%d", hash, h, ok, db.LastBlock, height)
	}
}

func TestImport(t *testing.T) {
	for _, tc := range []struct {
		name  string
		v020  bool
		batch int
	}{
		{"current schema", false, 0},
		{"v0.2.0 schema, batches of 2", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := fixture(t)
			db.V020 = tc.v020
			src := writeFixture(t, dir, db)
			before := fileHash(t, src)
			dest := filepath.Join(dir, "teos.db")

			sum, err := rustimport.Import(t.Context(), rustimport.Config{
				Source: src, Dest: dest, BlockHeight: heights(db, 777), BatchSize: tc.batch})
			if err != nil {
				t.Fatal(err)
			}
			want := rustimport.Summary{Keys: 3, Users: 3, Appointments: 5, Trackers: 2,
				TowerKey: db.Keys[2], LastBlock: db.LastBlock, Height: 777}
			if !reflect.DeepEqual(sum, want) {
				t.Fatalf("summary %+v, want %+v", sum, want)
			}
			checkImported(t, dest, db, 777)
			if fileHash(t, src) != before {
				t.Fatal("the rust-teos database changed")
			}
			// Nothing beside it either: no journal, WAL, shm or temporary file.
			if got := dirNames(t, dir); !slices.Equal(got, []string{"teos.db", "teos_db.sql3"}) {
				t.Fatalf("files after the import: %v", got)
			}
		})
	}
}

// TestImportNoLastBlock: a rust-teos that never processed a block; teosd then starts from
// bitcoind's tip, as rust-teos would.
func TestImportNoLastBlock(t *testing.T) {
	dir := t.TempDir()
	db := fixture(t)
	db.LastBlock = nil
	src := writeFixture(t, dir, db)
	dest := filepath.Join(dir, "teos.db")
	sum, err := rustimport.Import(t.Context(), rustimport.Config{Source: src, Dest: dest, BlockHeight: heights(db, 0)})
	if err != nil || sum.LastBlock != nil {
		t.Fatalf("import: %+v %v", sum, err)
	}
	checkImported(t, dest, db, 0)
}

// TestImportActiveKey: rust-teos uses the key whose id is the AUTOINCREMENT counter, even if
// rows were removed around it.
func TestImportActiveKey(t *testing.T) {
	dir := t.TempDir()
	db := fixture(t)
	src := writeFixture(t, dir, db)
	sqlExec(t, src, "DELETE FROM keys WHERE id = 1")
	dest := filepath.Join(dir, "teos.db")
	sum, err := rustimport.Import(t.Context(), rustimport.Config{Source: src, Dest: dest, BlockHeight: heights(db, 5)})
	if err != nil || sum.TowerKey != db.Keys[2] || sum.Keys != 2 {
		t.Fatalf("import: %+v %v", sum, err)
	}
	db.Keys = db.Keys[1:]
	checkImported(t, dest, db, 5)
}

// TestTowerKey: the key rust-teos uses is the one its AUTOINCREMENT counter names, also when
// it is not the newest row, and the file is left as it was.
func TestTowerKey(t *testing.T) {
	db := fixture(t)
	src := writeFixture(t, t.TempDir(), db)
	sqlExec(t, src, "UPDATE sqlite_sequence SET seq = 2 WHERE name = 'keys'")
	before := fileHash(t, src)
	key, err := rustimport.TowerKey(t.Context(), src)
	if err != nil || key != db.Keys[1] {
		t.Fatalf("TowerKey = %x, %v; want %x", key, err, db.Keys[1])
	}
	if fileHash(t, src) != before {
		t.Fatal("TowerKey changed the file")
	}
}

func sqlExec(t testing.TB, path string, stmts ...string) {
	t.Helper()
	conn, err := sql.Open("sqlite", rustfixture.URI(path, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestImportRefusals: every bad input is refused with the right kind of error, and nothing is
// written: no store, no temporary file, the source unchanged.
func TestImportRefusals(t *testing.T) {
	unknownBlock := func(context.Context, chainhash.Hash) (uint32, error) {
		return 0, errors.New("Block not found")
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, src string) // after the fixture is written
		height  func(context.Context, chainhash.Hash) (uint32, error)
		wantErr error
	}{
		{name: "not sqlite", wantErr: rustimport.ErrUnknownFormat, prepare: func(t *testing.T, src string) {
			writeFile(t, src, random(t, 4096))
		}},
		{name: "empty file", wantErr: rustimport.ErrUnknownFormat, prepare: func(t *testing.T, src string) {
			writeFile(t, src, nil)
		}},
		{name: "truncated", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			b := readFile(t, src)
			writeFile(t, src, b[:len(b)-4096])
		}},
		{name: "corrupt page", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			b := readFile(t, src)
			for i := 4096 * 2; i < 4096*3; i++ { // page 3: a table's b-tree
				b[i] = 0xa5
			}
			writeFile(t, src, b)
		}},
		{name: "hot journal", wantErr: rustimport.ErrInUse, prepare: func(t *testing.T, src string) {
			writeFile(t, src+"-journal", random(t, 512))
		}},
		{name: "WAL mode", wantErr: rustimport.ErrUnknownFormat, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "PRAGMA journal_mode=WAL")
		}},
		{name: "extra column", wantErr: rustimport.ErrUnknownFormat, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "ALTER TABLE users ADD COLUMN nickname TEXT")
		}},
		{name: "extra table", wantErr: rustimport.ErrUnknownFormat, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "CREATE TABLE sessions (id INT)")
		}},
		{name: "missing table", wantErr: rustimport.ErrUnknownFormat, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "DROP TABLE trackers")
		}},
		{name: "no key", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "DELETE FROM keys")
		}},
		{name: "active key missing", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "DELETE FROM keys WHERE id = 3")
		}},
		{name: "key not hex", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "UPDATE keys SET key = 'zz' WHERE id = 3")
		}},
		{name: "user id not a key", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "PRAGMA foreign_keys=0", "UPDATE users SET user_id = zeroblob(33) WHERE rowid = 1")
		}},
		{name: "negative slots", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "UPDATE users SET available_slots = -1 WHERE rowid = 2")
		}},
		{name: "appointment of no user", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "PRAGMA foreign_keys=0", "DELETE FROM users WHERE user_id = (SELECT user_id FROM appointments LIMIT 1)")
		}},
		{name: "uuid mismatch", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "PRAGMA foreign_keys=0", "UPDATE appointments SET to_self_delay = 1, locator = zeroblob(16) WHERE rowid = 1")
		}},
		{name: "signature not text", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "UPDATE appointments SET user_signature = zeroblob(4) WHERE rowid = 2")
		}},
		{name: "tracker of no appointment", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "PRAGMA foreign_keys=0", "DELETE FROM appointments WHERE UUID = (SELECT UUID FROM trackers LIMIT 1)")
		}},
		{name: "penalty not a transaction", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "UPDATE trackers SET penalty_tx = x'0200' WHERE rowid = 1")
		}},
		{name: "confirmed not a bool", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "UPDATE trackers SET confirmed = 7 WHERE rowid = 1")
		}},
		{name: "last block short", wantErr: rustimport.ErrCorrupt, prepare: func(t *testing.T, src string) {
			sqlExec(t, src, "UPDATE last_known_block SET block_hash = zeroblob(31)")
		}},
		{name: "last block unknown to bitcoind", height: unknownBlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := fixture(t)
			src := writeFixture(t, dir, db)
			if tc.prepare != nil {
				tc.prepare(t, src)
			}
			before := fileHash(t, src)
			filesBefore := dirNames(t, dir)
			height := tc.height
			if height == nil {
				height = heights(db, 1)
			}
			_, err := rustimport.Import(t.Context(), rustimport.Config{Source: src, Dest: filepath.Join(dir, "teos.db"), BlockHeight: height})
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("import: %v, want %v", err, tc.wantErr)
			}
			if bytes.ContainsRune([]byte(err.Error()), '\n') {
				t.Fatalf("error is not one line: %q", err)
			}
			t.Logf("refused: %v", err)
			if fileHash(t, src) != before {
				t.Fatal("the rust-teos database changed")
			}
			if got := dirNames(t, dir); !slices.Equal(got, filesBefore) {
				t.Fatalf("files %v after the refusal, before %v", got, filesBefore)
			}
		})
	}
}

// TestImportLocked: a writer holding the file (rust-teos mid-transaction) makes the import
// refuse rather than read a half-written state.
func TestImportLocked(t *testing.T) {
	dir := t.TempDir()
	db := fixture(t)
	src := writeFixture(t, dir, db)
	conn, err := sql.Open("sqlite", rustfixture.URI(src, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := conn.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(t.Context(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	_, err = rustimport.Import(t.Context(), rustimport.Config{Source: src, Dest: filepath.Join(dir, "teos.db"), BlockHeight: heights(db, 1)})
	if !errors.Is(err, rustimport.ErrInUse) {
		t.Fatalf("import of a locked file: %v, want ErrInUse", err)
	}
	t.Logf("refused: %v", err)
	if _, err := os.Stat(filepath.Join(dir, "teos.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("teos.db after the refusal: %v", err)
	}
	if _, err := c.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
}

// TestImportInterrupted: an import stopped before the end leaves no store and no temporary
// file; one killed there leaves a temporary file that the next import removes.
func TestImportInterrupted(t *testing.T) {
	dir := t.TempDir()
	db := fixture(t)
	src := writeFixture(t, dir, db)
	dest := filepath.Join(dir, "teos.db")
	stop := errors.New("stopped")
	var tempSeen []string
	_, err := rustimport.Import(t.Context(), rustimport.Config{Source: src, Dest: dest, BlockHeight: heights(db, 9),
		Paused: func(context.Context) error {
			tempSeen = dirNames(t, dir)
			return stop
		}})
	if !errors.Is(err, stop) {
		t.Fatalf("import: %v", err)
	}
	if len(tempSeen) != 2 || !strings.HasPrefix(tempSeen[0], "teos.db.import-") {
		t.Fatalf("files while paused: %v, want the temporary store beside the source", tempSeen)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"teos_db.sql3"}) {
		t.Fatalf("files after the interrupted import: %v", got)
	}

	// What a SIGKILL leaves: a half-written temporary store nobody holds.
	importOverStaleTemp(t, dir, src, dest, db)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestImportDataDirCreatedOnlyOnSuccess: --importrustteos may name a file kept elsewhere while
// the data dir does not exist yet. A refusal, early (before anything is written) or late (with
// the temporary store half written), leaves no data dir behind; a complete import creates it.
func TestImportDataDirCreatedOnlyOnSuccess(t *testing.T) {
	srcDir := t.TempDir()
	db := fixture(t)
	src := writeFixture(t, srcDir, db)
	root := t.TempDir()
	dest := filepath.Join(root, "datadir", "regtest", "teos.db")
	stop := errors.New("stopped")
	for _, tc := range []struct {
		name   string
		config rustimport.Config
	}{
		{"last block unknown to bitcoind", rustimport.Config{Source: src, Dest: dest,
			BlockHeight: func(context.Context, chainhash.Hash) (uint32, error) { return 0, errors.New("Block not found") }}},
		{"stopped while copying", rustimport.Config{Source: src, Dest: dest, BlockHeight: heights(db, 3),
			Paused: func(context.Context) error {
				if got := dirNames(t, filepath.Dir(dest)); len(got) != 1 {
					t.Errorf("files while copying: %v, want the temporary store", got)
				}
				return stop
			}}},
	} {
		if _, err := rustimport.Import(t.Context(), tc.config); err == nil {
			t.Fatalf("%s: the import succeeded", tc.name)
		}
		if got := dirNames(t, root); len(got) != 0 {
			t.Fatalf("%s: %v left behind by the refusal", tc.name, got)
		}
	}
	var err error
	syncs := durabletest.Syncs(t, func() {
		_, err = rustimport.Import(t.Context(), rustimport.Config{Source: src, Dest: dest, BlockHeight: heights(db, 3)})
	})
	if err != nil {
		t.Fatal(err)
	}
	checkImported(t, dest, db, 3)
	// Each new directory's name is flushed, and the store's after the rename: a power loss
	// after teosd started on it cannot take the imported tower away.
	netDir := filepath.Dir(dest)
	for _, d := range []string{root, filepath.Dir(netDir), netDir} {
		if !slices.Contains(syncs, d) {
			t.Fatalf("flushed %v: %s missing", syncs, d)
		}
	}
	if syncs[len(syncs)-1] != netDir {
		t.Fatalf("flushed %v: want %s last, after the rename", syncs, netDir)
	}
}

// TestImportStaleTempInDirWithGlobCharacters: a temporary store left by a killed import is
// removed by the next import wherever the data dir is, also when its path holds characters
// that are special in a glob pattern ("[", "*", "?"); they once made the leftover (as big as
// the imported store) stay there for good, one more at each killed import.
func TestImportStaleTempInDirWithGlobCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "teos [main]*?")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	db := fixture(t)
	src := writeFixture(t, dir, db)
	dest := filepath.Join(dir, "teos.db")
	importOverStaleTemp(t, dir, src, dest, db)
}

// importOverStaleTemp leaves what a SIGKILL leaves in dir (a temporary store nobody holds),
// imports src into dest and checks the import is whole and the leftover gone.
func importOverStaleTemp(t *testing.T, dir, src, dest string, db *rustfixture.DB) {
	t.Helper()
	stale := filepath.Join(dir, "teos.db.import-123")
	st, err := store.Open(stale, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := rustimport.Import(t.Context(), rustimport.Config{Source: src, Dest: dest, BlockHeight: heights(db, 9)}); err != nil {
		t.Fatal(err)
	}
	checkImported(t, dest, db, 9)
	if got := dirNames(t, dir); !slices.Equal(got, []string{"teos.db", "teos_db.sql3"}) {
		t.Fatalf("files after the import: %v, want the stale temporary store removed", got)
	}
}
