package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/pkg/teos"
)

// The teosd builds the upgrade tests start from. Moving a pin is fine as long as it stays an
// older layout, so the upgrade runs a real migration and the downgrade meets a newer file.
const (
	// oldRelease is the last commit whose bbolt file is layout version 2 (before the hand-over
	// queue).
	oldRelease = "04b77af777eea1877523984fde50fca755bfbe69"
	// oldPostgresRelease is the first with the PostgreSQL store: schema version 1 (no
	// allowlist, lnd records, lnd counts or leadership terms).
	oldPostgresRelease = "9af6fce667642e94eb10c07cdaf4dff248b993b9"
)

// buildOldTeosd builds teosd at commit from this repository's history with git archive, or
// skips when there is no history to build it from (a source tarball, a shallow clone).
func buildOldTeosd(t *testing.T, commit string) string {
	t.Helper()
	oldBuilds.Lock()
	defer oldBuilds.Unlock()
	if bin, ok := oldBuilds.bin[commit]; ok {
		return bin
	}
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", args...).Output()
		return strings.TrimSpace(string(out)), err
	}
	root, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		t.Skipf("no git repository to build the old teosd from: %v", err)
	}
	if _, err := git("-C", root, "cat-file", "-e", commit+"^{commit}"); err != nil {
		if shallow, _ := git("-C", root, "rev-parse", "--is-shallow-repository"); shallow == "true" {
			t.Skipf("commit %s not in this shallow clone", commit)
		}
		t.Fatalf("commit %s not in the repository's history: %v", commit, err)
	}
	// Next to this tree's teosd, removed with it by TestMain: built once per run.
	dir := filepath.Join(filepath.Dir(teosdBin), "old-"+commit[:12])
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, "src.tar")
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "-C", root, "archive", "-o", tarball, commit).CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	if out, err := exec.Command("tar", "-xf", tarball, "-C", src).CombinedOutput(); err != nil {
		t.Fatalf("untar %s: %v\n%s", commit, err, out)
	}
	bin := filepath.Join(dir, "teosd-"+commit[:12])
	build := exec.Command("go", "build", "-o", bin, "./cmd/teosd")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build teosd at %s: %v\n%s", commit, err, out)
	}
	oldBuilds.bin[commit] = bin
	return bin
}

var oldBuilds = struct {
	sync.Mutex
	bin map[string]string
}{bin: map[string]string{}}

// runBinToExit runs bin until it exits and returns its exit code and stderr.
func runBinToExit(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit; stderr:\n%s", filepath.Base(bin), out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestUpgradeFromOldRelease runs an older teosd (built from oldRelease) until it holds users,
// watched appointments and trackers (one penalty confirmed, one in the mempool), stops it and
// starts this tree's teosd on the same data dir: the tower key, the subscriptions, every
// appointment and tracker and the last block are all there, a block mined in between is
// processed, and a new breach is answered. Then the old binary must refuse the upgraded file,
// and leave it intact.
func TestUpgradeFromOldRelease(t *testing.T) {
	testUpgrade(t, buildOldTeosd(t, oldRelease), "", true)
}

// TestUpgradeSameLayout upgrades from oldPostgresRelease's teosd on bbolt: a build with the
// same layout version (3) and no migration. That one must then read the newer build's file as
// it is (nothing it stores changed meaning since), so going back works too.
func TestUpgradeSameLayout(t *testing.T) {
	testUpgrade(t, buildOldTeosd(t, oldPostgresRelease), "", false)
}

// TestUpgradePostgresFromOldRelease is TestUpgradeFromOldRelease on a PostgreSQL database
// created by the first teosd that had that store: its schema is migrated from version 1.
func TestUpgradePostgresFromOldRelease(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true}) // skips without PostgreSQL
	oldBin := buildOldTeosd(t, oldPostgresRelease)
	testUpgrade(t, oldBin, fmt.Sprintf("database_url = %q\n", pg.NewDatabase(t)), true)
}

// testUpgrade runs the upgrade; refused says whether oldBin must then refuse the data.
func testUpgrade(t *testing.T, oldBin, toml string, refused bool) {
	shared := toml != ""
	node := startNode(t)
	c := newChain(t, node)
	old := newTower(t, node, toml)
	old.bin = oldBin
	old.start()

	alice, bob := newUser(t), newUser(t)
	aliceReg, bobReg := alice.register(t, old), bob.register(t, old)
	confirmed, inMempool, later := node.NewBreach(t), node.NewBreach(t), node.NewBreach(t)
	watched := randomAppointment(t, 200)
	alice.add(t, old, breachAppointment(t, confirmed))
	alice.add(t, old, breachAppointment(t, inMempool))
	alice.add(t, old, watched)
	bob.add(t, old, breachAppointment(t, later))

	c.send(t, confirmed.Commitment)
	block, _ := c.mine(t)
	if !blockHas(block, confirmed.Commitment) {
		t.Fatal("first commitment not mined")
	}
	alice.waitResponded(t, old, confirmed)
	c.send(t, inMempool.Commitment)
	block, _ = c.mine(t)
	if !blockHas(block, confirmed.Penalty, inMempool.Commitment) {
		t.Fatal("first penalty and second commitment not mined together")
	}
	alice.waitResponded(t, old, inMempool)
	aliceSub, bobSub := alice.subscriptionOK(t, old), bob.subscriptionOK(t, old)
	if aliceSub.AvailableSlots != aliceReg.AvailableSlots-3 || bobSub.AvailableSlots != bobReg.AvailableSlots-1 {
		t.Fatalf("old tower's slots: alice %d of %d, bob %d of %d", aliceSub.AvailableSlots, aliceReg.AvailableSlots,
			bobSub.AvailableSlots, bobReg.AvailableSlots)
	}
	old.stop()

	// A block while no tower runs: the second penalty confirms in it.
	block, _ = c.mine(t)
	if !blockHas(block, inMempool.Penalty) {
		t.Fatal("second penalty not mined")
	}
	tip := c.tip(t)

	tw := newTower(t, node, toml)
	tw.dataDir, tw.args, tw.apiURL = old.dataDir, old.args, old.apiURL
	tw.start()
	if tw.id != old.id {
		t.Fatalf("tower id %s after the upgrade, was %s", tw.id, old.id)
	}
	if shared {
		// The operator sees the migration that delayed the start.
		if l := tw.logs(); !strings.Contains(l, `msg="PostgreSQL schema migrated" from=1 to=`) {
			t.Errorf("no migration in the newer teosd's log:\n%s", l)
		}
		// With a shared database the API opens before this instance leads and catches up.
		waitTowerAt(t, tw, tip)
	} else if h := towerHeight(t, tw); h != tip {
		t.Fatalf("tower at height %d after the upgrade, tip %d", h, tip)
	}
	for _, x := range []struct {
		u   *user
		was subscriptionResp
	}{{alice, aliceSub}, {bob, bobSub}} {
		if got := x.u.subscriptionOK(t, tw); got.SubscriptionExpiry != x.was.SubscriptionExpiry {
			t.Fatalf("subscription_expiry %d after the upgrade, was %d", got.SubscriptionExpiry, x.was.SubscriptionExpiry)
		}
	}
	alice.wantSubscription(t, tw, aliceSub.AvailableSlots, locatorOf(confirmed), locatorOf(inMempool), watched.Locator)
	bob.wantSubscription(t, tw, bobSub.AvailableSlots, locatorOf(later))
	alice.wantResponded(t, tw, confirmed)
	alice.wantResponded(t, tw, inMempool)
	for _, x := range []struct {
		u   *user
		loc teos.Locator
	}{{alice, watched.Locator}, {bob, locatorOf(later)}} {
		if code, got := x.u.get(t, tw, x.loc); code != 200 || got["status"] != "being_watched" {
			t.Fatalf("get_appointment %s after the upgrade: %d %v", x.loc, code, got)
		}
	}

	// The upgraded tower answers a new breach and takes new appointments.
	c.send(t, later.Commitment)
	_, _ = c.mine(t)
	bob.waitResponded(t, tw, later)
	extra := randomAppointment(t, 100)
	if r := alice.add(t, tw, extra); r.AvailableSlots != aliceSub.AvailableSlots-1 {
		t.Fatalf("available_slots %d after a new add, want %d", r.AvailableSlots, aliceSub.AvailableSlots-1)
	}
	tw.stop()

	if !refused {
		// Back to the old binary: it reads everything the new one wrote.
		old.start()
		alice.wantResponded(t, old, confirmed)
		bob.wantResponded(t, old, later)
		alice.wantSubscription(t, old, aliceSub.AvailableSlots-1, locatorOf(confirmed), locatorOf(inMempool), watched.Locator, extra.Locator)
		old.stop()
		tw.start()
		alice.wantSubscription(t, tw, aliceSub.AvailableSlots-1, locatorOf(confirmed), locatorOf(inMempool), watched.Locator, extra.Locator)
		tw.stop()
		return
	}
	// The old binary refuses the upgraded file, with a reason, and leaves it as it was.
	dbFile := filepath.Join(old.dataDir, "regtest", "teos.db")
	before, _ := os.ReadFile(dbFile) // nil with a shared database
	code, out := runBinToExit(t, oldBin, old.args...)
	if code == 0 || !strings.Contains(out, "newer than this binary") {
		t.Fatalf("old teosd on the upgraded file: exit %d, want a refusal naming the version\n%s", code, out)
	}
	t.Logf("old teosd on the upgraded file: exit %d: %s", code, strings.TrimSpace(out))
	if after, _ := os.ReadFile(dbFile); !bytes.Equal(after, before) {
		t.Fatal("the old teosd's refusal changed teos.db")
	}
	tw.start()
	alice.wantResponded(t, tw, confirmed)
	bob.wantResponded(t, tw, later)
	alice.wantSubscription(t, tw, aliceSub.AvailableSlots-1, locatorOf(confirmed), locatorOf(inMempool), watched.Locator, extra.Locator)
	tw.stop()
}
