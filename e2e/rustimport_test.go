package e2e

import (
	"bufio"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/rustimport/rustfixture"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// rustTower is the state of a rust-teos tower about to be switched to teos-go, with what its
// users hold: their registration and appointment receipts.
type rustTower struct {
	db           *rustfixture.DB
	towerKey     *btcec.PrivateKey
	alice, bob   *user
	carol        *user // registered, no appointment
	regReceipts  map[teos.UserID]string
	apptReceipts map[teos.UUID]string
	watched      []*store.Appointment // still watched after the switch
	pendingAppt  *store.Appointment   // watched until its breach is answered
	mined        *btcdtest.Breach     // answered by rust-teos: a confirmed tracker of bob's
	pending      *btcdtest.Breach     // alice's; its dispute is mined while no tower runs
}

// newRustTower builds rust-teos's state on node's chain: keys, three users, watched
// appointments (two share a locator), a breach it answered (its penalty confirmed) and a
// breach still to come. Its last known block is the current tip.
func newRustTower(t *testing.T, node *btcdtest.Node, c *chain) *rustTower {
	t.Helper()
	rt := &rustTower{
		db:    &rustfixture.DB{Users: map[teos.UserID]store.UserInfo{}},
		alice: newUser(t), bob: newUser(t), carol: newUser(t),
		regReceipts: map[teos.UserID]string{}, apptReceipts: map[teos.UUID]string{},
	}
	for range 3 { // rust-teos was restarted twice with --overwritekey: the last key is the tower's
		k, err := btcec.NewPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		rt.db.Keys = append(rt.db.Keys, [32]byte(k.Serialize()))
		rt.towerKey = k
	}
	start := c.tip(t) - 5
	for i, u := range []*user{rt.alice, rt.bob, rt.carol} {
		info := store.UserInfo{AvailableSlots: 9990 - uint32(i), SubscriptionStart: start, SubscriptionExpiry: start + 4320 + uint32(i)}
		rt.db.Users[u.id] = info
		rec := teos.RegistrationReceipt{UserID: u.id, AvailableSlots: info.AvailableSlots,
			SubscriptionStart: info.SubscriptionStart, SubscriptionExpiry: info.SubscriptionExpiry}
		rt.regReceipts[u.id] = wtcrypto.SignMessage(rec.SignedBytes(), rt.towerKey)
	}
	add := func(u *user, a teos.Appointment, startBlock uint32) *store.Appointment {
		sa := &store.Appointment{Appointment: a, UserID: u.id, StartBlock: startBlock,
			UserSignature: wtcrypto.SignMessage(a.SignedBytes(), u.key)}
		rt.db.Appointments = append(rt.db.Appointments, sa)
		rt.apptReceipts[sa.UUID()] = wtcrypto.SignMessage(teos.AppointmentReceiptBytes(sa.UserSignature, startBlock), rt.towerKey)
		return sa
	}
	shared := randomAppointment(t, 120)
	rt.watched = append(rt.watched, add(rt.alice, shared, start+1))
	bobs := shared
	bobs.EncryptedBlob = randomAppointment(t, 3000).EncryptedBlob // two slots
	rt.watched = append(rt.watched, add(rt.bob, bobs, start+2))
	rt.watched = append(rt.watched, add(rt.bob, randomAppointment(t, 200), start+3))

	rt.pending = node.NewBreach(t)
	rt.pendingAppt = add(rt.alice, breachAppointment(t, rt.pending), start+4)

	rt.mined = node.NewBreach(t)
	answered := add(rt.bob, breachAppointment(t, rt.mined), start+4)
	c.send(t, rt.mined.Commitment)
	c.send(t, rt.mined.Penalty)
	block, height := c.mine(t)
	if !blockHas(block, rt.mined.Commitment, rt.mined.Penalty) {
		t.Fatal("answered breach not mined")
	}
	rt.db.Trackers = append(rt.db.Trackers, &store.Tracker{UUID: answered.UUID(),
		DisputeTx: txBytes(t, rt.mined.Commitment), PenaltyTx: txBytes(t, rt.mined.Penalty), Height: height, Confirmed: true})
	last := block.BlockHash()
	rt.db.LastBlock = &last
	return rt
}

func (rt *rustTower) write(t *testing.T, path string) [32]byte {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := rustfixture.Write(path, rt.db); err != nil {
		t.Fatal(err)
	}
	return sha256File(t, path)
}

func sha256File(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// check reads every imported row back through the public API and the admin RPC. pendingDone
// says whether the pending breach has been answered (it is then a tracker).
func (rt *rustTower) check(t *testing.T, tw *tower, pendingDone bool) {
	t.Helper()
	if tw.id != teos.UserIDFromPubKey(rt.towerKey.PubKey()) {
		t.Fatalf("tower id %s, want rust-teos's newest key %x", tw.id, rt.towerKey.PubKey().SerializeCompressed())
	}
	// Receipts the users hold still verify against the tower id.
	for id, sig := range rt.regReceipts {
		info := rt.db.Users[id]
		rec := teos.RegistrationReceipt{UserID: id, AvailableSlots: info.AvailableSlots,
			SubscriptionStart: info.SubscriptionStart, SubscriptionExpiry: info.SubscriptionExpiry}
		if !wtcrypto.VerifySignature(rec.SignedBytes(), sig, tw.id) {
			t.Fatalf("registration receipt of %s does not verify against the tower id", id)
		}
	}
	for _, a := range rt.db.Appointments {
		if !wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(a.UserSignature, a.StartBlock), rt.apptReceipts[a.UUID()], tw.id) {
			t.Fatalf("appointment receipt of %s does not verify against the tower id", a.UUID())
		}
	}

	// Public API: subscriptions (slots, expiry, every locator) and each appointment's status.
	for _, u := range []*user{rt.alice, rt.bob, rt.carol} {
		var locs []teos.Locator
		for _, a := range rt.db.Appointments {
			if a.UserID == u.id {
				locs = append(locs, a.Locator)
			}
		}
		u.wantSubscription(t, tw, rt.db.Users[u.id].AvailableSlots, locs...)
		if sub := u.subscriptionOK(t, tw); sub.SubscriptionExpiry != rt.db.Users[u.id].SubscriptionExpiry {
			t.Fatalf("subscription_expiry %d, want %d", sub.SubscriptionExpiry, rt.db.Users[u.id].SubscriptionExpiry)
		}
	}
	owner := map[teos.UserID]*user{rt.alice.id: rt.alice, rt.bob.id: rt.bob}
	for _, a := range rt.watched {
		code, got := owner[a.UserID].get(t, tw, a.Locator)
		appt, _ := got["appointment"].(map[string]any)
		if code != 200 || got["status"] != "being_watched" || appt == nil ||
			appt["locator"] != a.Locator.String() || appt["encrypted_blob"] != hex.EncodeToString(a.EncryptedBlob) ||
			appt["to_self_delay"] != float64(a.ToSelfDelay) {
			t.Fatalf("get_appointment %s: %d %v", a.Locator, code, got)
		}
	}
	rt.bob.wantResponded(t, tw, rt.mined)
	if pendingDone {
		rt.alice.wantResponded(t, tw, rt.pending)
	}

	// Admin RPC.
	var info cliTowerInfo
	tw.cliOK(t, &info, "gettowerinfo")
	trackers := 1
	if pendingDone {
		trackers = 2
	}
	if info.TowerID != tw.id.String() || info.NRegisteredUsers != 3 ||
		info.NWatcherAppointments != uint32(len(rt.db.Appointments)-trackers) || info.NResponderTrackers != uint32(trackers) {
		t.Fatalf("gettowerinfo: %+v", info)
	}
	var users struct {
		UserIDs []string `json:"user_ids"`
	}
	tw.cliOK(t, &users, "getusers")
	if !slices.Equal(cliSorted(users.UserIDs...), cliSorted(rt.alice.id.String(), rt.bob.id.String(), rt.carol.id.String())) {
		t.Fatalf("getusers: %v", users.UserIDs)
	}
	for id, want := range rt.db.Users {
		var u cliUser
		tw.cliOK(t, &u, "getuser", id.String())
		var uuids []string
		for _, a := range rt.db.Appointments {
			if a.UserID == id {
				uuids = append(uuids, a.UUID().String())
			}
		}
		if u.AvailableSlots != want.AvailableSlots || u.SubscriptionExpiry != want.SubscriptionExpiry ||
			!slices.Equal(cliSorted(u.Appointments...), cliSorted(uuids...)) {
			t.Fatalf("getuser %s: %+v, want %+v with %v", id, u, want, uuids)
		}
	}
	var all cliAppointments
	tw.cliOK(t, &all, "getallappointments")
	var wantTexts []string
	for _, a := range rt.watched {
		wantTexts = append(wantTexts, cliAppointmentText(a.Appointment))
	}
	if !pendingDone {
		wantTexts = append(wantTexts, cliAppointmentText(rt.pendingAppt.Appointment))
	}
	// Watched appointments first, then trackers.
	if len(all.Appointments) != len(rt.db.Appointments) ||
		!slices.Equal(cliRawTexts(all.Appointments[:len(wantTexts)]), cliSorted(wantTexts...)) {
		t.Fatalf("getallappointments: %s", all.Appointments)
	}
}

func noSidecars(t *testing.T, sqlPath string) {
	t.Helper()
	for _, side := range []string{"-journal", "-wal", "-shm"} {
		if _, err := os.Stat(sqlPath + side); !os.IsNotExist(err) {
			t.Fatalf("%s%s exists after the import: %v", sqlPath, side, err)
		}
	}
}

// TestImportRustTeos switches a rust-teos tower to teos-go on the same data dir: teosd
// imports teos_db.sql3 on its first start, catches up from rust-teos's last block and answers
// the breach mined during the switch with the imported penalty; every user, appointment,
// tracker and receipt is as rust-teos left it, and rust-teos's file is untouched.
func TestImportRustTeos(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	rt := newRustTower(t, node, c)
	tw := newTower(t, node, "")
	sqlPath := filepath.Join(tw.dataDir, "regtest", "teos_db.sql3")
	before := rt.write(t, sqlPath)
	// rust-teos's onion key stays where it is, for the Tor support to read.
	onionPath := filepath.Join(tw.dataDir, "regtest", "onion_v3_sk")
	if err := os.WriteFile(onionPath, []byte("rust-teos onion key"), 0o600); err != nil {
		t.Fatal(err)
	}
	onionBefore := sha256File(t, onionPath)

	// The operator stops rust-teos; the breach is mined while no tower watches.
	c.send(t, rt.pending.Commitment)
	block, _ := c.mine(t)
	if !blockHas(block, rt.pending.Commitment) {
		t.Fatal("pending commitment not mined")
	}
	node.Generate(t, 2)

	tw.start()
	if !c.inMempool(t, rt.pending.Penalty.TxHash()) {
		t.Fatalf("the imported penalty is not in the mempool once teosd answers\n%s", tw.logs())
	}
	logs := tw.logs()
	if !strings.Contains(logs, `msg="imported rust-teos database"`) ||
		!strings.Contains(logs, "keys=3 users=3 appointments=5 trackers=1 last_block="+rt.db.LastBlock.String()) {
		t.Fatalf("no import line with the counts:\n%s", logs)
	}
	block, _ = c.mine(t)
	if !blockHas(block, rt.pending.Penalty) {
		t.Fatal("imported penalty not mined")
	}
	rt.check(t, tw, true)

	// A restart does not import again: teos.db is there.
	tw.stop()
	tw.start()
	if n := strings.Count(tw.logs(), "importing rust-teos database"); n != 1 {
		t.Fatalf("%d imports, want 1", n)
	}
	rt.check(t, tw, true)
	tw.stop()
	if sha256File(t, sqlPath) != before {
		t.Fatal("teos_db.sql3 changed")
	}
	noSidecars(t, sqlPath)
	if sha256File(t, onionPath) != onionBefore {
		t.Fatal("onion_v3_sk changed")
	}
}

// TestImportRustTeosKilled kills teosd (SIGKILL) in the middle of the import, with users and
// appointments written to the temporary store and the rest not: the next start imports again
// from scratch and gets everything.
func TestImportRustTeosKilled(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	rt := newRustTower(t, node, c)
	tw := newTower(t, node, "")
	netDir := filepath.Join(tw.dataDir, "regtest")
	sqlPath := filepath.Join(netDir, "teos_db.sql3")
	before := rt.write(t, sqlPath)

	cmd := exec.Command(teosdBin, tw.args...)
	cmd.Env = append(os.Environ(), "TEOSD_TEST_IMPORT_PAUSE=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	btcdtest.DieWithParent(cmd, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	paused := make(chan struct{})
	var seen strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "import paused") {
				close(paused)
				break
			}
		}
		for sc.Scan() { // keep the pipe drained
		}
	}()
	select {
	case <-paused:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the import never paused:\n%s", seen.String())
	}
	temps, _ := filepath.Glob(filepath.Join(netDir, "teos.db.import-*"))
	if len(temps) != 1 {
		t.Fatalf("temporary stores while paused: %v", temps)
	}
	if _, err := os.Stat(filepath.Join(netDir, "teos.db")); !os.IsNotExist(err) {
		t.Fatalf("teos.db exists before the import completed: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	tw.start()
	rt.check(t, tw, false)
	if left, _ := filepath.Glob(filepath.Join(netDir, "teos.db.import-*")); len(left) != 0 {
		t.Fatalf("temporary stores left: %v", left)
	}
	tw.stop()
	if sha256File(t, sqlPath) != before {
		t.Fatal("teos_db.sql3 changed")
	}
	noSidecars(t, sqlPath)
}

// errorLines returns the log lines at level ERROR.
func errorLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "level=ERROR") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestImportRustTeosRefusals: a bad rust-teos file stops teosd with one line and nothing
// written (no store, no tower key, no certificates); --importrustteos imports a file kept
// elsewhere into an empty data dir and refuses a store that already has data.
func TestImportRustTeosRefusals(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	rt := newRustTower(t, node, c)

	refuse := func(t *testing.T, tw *tower, want string, args ...string) {
		t.Helper()
		code, out := runToExit(t, append(append([]string{}, tw.args...), args...)...)
		errs := errorLines(out)
		if code != 1 || len(errs) != 1 || !strings.Contains(errs[0], want) {
			t.Fatalf("exit %d, want 1 with one error line containing %q:\n%s", code, want, out)
		}
		t.Logf("refused: %s", errs[0])
	}
	// nothingWritten: the data dir holds only what the test put there.
	nothingWritten := func(t *testing.T, tw *tower, want ...string) {
		t.Helper()
		var got []string
		err := filepath.Walk(tw.dataDir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				rel, _ := filepath.Rel(tw.dataDir, p)
				got = append(got, rel)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, cliSorted(append(want, "teos.toml")...)) {
			t.Fatalf("data dir holds %v, want %v", got, want)
		}
	}

	t.Run("corrupt", func(t *testing.T) {
		tw := newTower(t, node, "")
		sqlPath := filepath.Join(tw.dataDir, "regtest", "teos_db.sql3")
		rt.write(t, sqlPath)
		b, err := os.ReadFile(sqlPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sqlPath, b[:len(b)/2], 0o600); err != nil { // a truncated copy
			t.Fatal(err)
		}
		before := sha256File(t, sqlPath)
		refuse(t, tw, "corrupt rust-teos database")
		nothingWritten(t, tw, "regtest/teos_db.sql3")
		if sha256File(t, sqlPath) != before {
			t.Fatal("teos_db.sql3 changed")
		}
	})

	t.Run("unknown schema", func(t *testing.T) {
		tw := newTower(t, node, "")
		sqlPath := filepath.Join(tw.dataDir, "regtest", "teos_db.sql3")
		rt.write(t, sqlPath)
		sqlExecE2E(t, sqlPath, "ALTER TABLE appointments ADD COLUMN channel BLOB")
		refuse(t, tw, "not a rust-teos database")
		nothingWritten(t, tw, "regtest/teos_db.sql3")
	})

	t.Run("locked", func(t *testing.T) {
		tw := newTower(t, node, "")
		sqlPath := filepath.Join(tw.dataDir, "regtest", "teos_db.sql3")
		rt.write(t, sqlPath)
		// This test process plays a rust-teos in the middle of a write.
		conn, err := sql.Open("sqlite", rustfixture.URI(sqlPath, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		lock, err := conn.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close()
		if _, err := lock.ExecContext(t.Context(), "BEGIN EXCLUSIVE"); err != nil {
			t.Fatal(err)
		}
		refuse(t, tw, "rust-teos database in use")
		if _, err := lock.ExecContext(t.Context(), "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		nothingWritten(t, tw, "regtest/teos_db.sql3")
	})

	t.Run("rust-teos still running", func(t *testing.T) {
		tw := newTower(t, node, "")
		sqlPath := filepath.Join(tw.dataDir, "regtest", "teos_db.sql3")
		rt.write(t, sqlPath)
		api, err := net.Listen("tcp", strings.TrimPrefix(tw.apiURL, "http://")) // rust-teos's API
		if err != nil {
			t.Fatal(err)
		}
		defer api.Close()
		refuse(t, tw, "(stop rust-teos first)")
		nothingWritten(t, tw, "regtest/teos_db.sql3")
	})

	t.Run("last block unknown to bitcoind", func(t *testing.T) {
		tw := newTower(t, node, "")
		sqlPath := filepath.Join(tw.dataDir, "regtest", "teos_db.sql3")
		rt.write(t, sqlPath)
		sqlExecE2E(t, sqlPath, "UPDATE last_known_block SET block_hash = randomblob(32)")
		refuse(t, tw, "rust-teos's last known block")
		nothingWritten(t, tw, "regtest/teos_db.sql3")
	})

	t.Run("explicit corrupt file, no network dir yet", func(t *testing.T) {
		elsewhere := filepath.Join(t.TempDir(), "backup.sql3")
		rt.write(t, elsewhere)
		// Found while copying, with the temporary store already written.
		sqlExecE2E(t, elsewhere, "UPDATE appointments SET user_signature = zeroblob(4)")
		tw := newTower(t, node, "")
		refuse(t, tw, "corrupt rust-teos database", "--importrustteos", elsewhere)
		nothingWritten(t, tw)
		if _, err := os.Stat(filepath.Join(tw.dataDir, "regtest")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the refused import left the network dir: %v", err)
		}
	})

	t.Run("explicit path", func(t *testing.T) {
		elsewhere := filepath.Join(t.TempDir(), "backup.sql3")
		before := rt.write(t, elsewhere)
		tw := newTower(t, node, "")
		tw.start("--importrustteos", elsewhere)
		if tw.id != teos.UserIDFromPubKey(rt.towerKey.PubKey()) {
			t.Fatalf("tower id %s, want rust-teos's", tw.id)
		}
		rt.bob.wantResponded(t, tw, rt.mined)
		tw.stop()
		// Still given on the next start: the store has data now, so it refuses.
		refuse(t, tw, "already has data", "--importrustteos", elsewhere)
		tw.start()
		rt.bob.wantResponded(t, tw, rt.mined)
		tw.stop()
		if sha256File(t, elsewhere) != before {
			t.Fatal("the imported file changed")
		}
		noSidecars(t, elsewhere)
	})

	t.Run("explicit over a fresh store", func(t *testing.T) {
		elsewhere := filepath.Join(t.TempDir(), "backup.sql3")
		rt.write(t, elsewhere)
		tw := newTower(t, node, "")
		tw.start() // a first start makes a tower key
		fresh := tw.id
		tw.stop()
		dbPath := filepath.Join(tw.dataDir, "regtest", "teos.db")
		before := sha256File(t, dbPath)
		refuse(t, tw, "already has data (1 tower keys", "--importrustteos", elsewhere)
		if sha256File(t, dbPath) != before {
			t.Fatal("the refused import changed teos.db")
		}
		tw.start()
		if tw.id != fresh {
			t.Fatal("the refused import changed the tower key")
		}
		tw.stop()
	})
}

func sqlExecE2E(t *testing.T, path string, stmts ...string) {
	t.Helper()
	conn, err := sql.Open("sqlite", rustfixture.URI(path, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportRustTeosStaleLastBlock: rust-teos's last block was reorganised out while no tower
// ran. teosd still learns its height (btcd gives none for a stale block: counted from its
// ancestor on the best chain), then follows the reorg on its first poll, as after a restart.
func TestImportRustTeosStaleLastBlock(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	rt := newRustTower(t, node, c)
	tw := newTower(t, node, "")
	rt.write(t, filepath.Join(tw.dataDir, "regtest", "teos_db.sql3"))
	staleHeight := c.tip(t)
	if err := c.rpc.InvalidateBlock(rt.db.LastBlock); err != nil {
		t.Fatalf("invalidateblock: %v", err)
	}
	node.Generate(t, 3) // re-mines the answered breach on the new branch

	tw.start()
	if !strings.Contains(tw.logs(), fmt.Sprintf("last_block=%s height=%d", rt.db.LastBlock, staleHeight)) {
		t.Fatalf("import line without the stale block's height %d:\n%s", staleHeight, tw.logs())
	}
	if !strings.Contains(tw.logs(), "block disconnected") {
		t.Fatalf("the tower did not disconnect rust-teos's stale block\n%s", tw.logs())
	}
	if h := towerHeight(t, tw); h != c.tip(t) {
		t.Fatalf("tower at %d, tip %d", h, c.tip(t))
	}
	rt.bob.wantResponded(t, tw, rt.mined)
	tw.stop()
}
