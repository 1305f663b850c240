package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
)

// TestSecondTeosdOnOneDataDir: a second teosd started on a data dir a running one uses exits 1
// with a reason that names the cause, and leaves the first one serving.
func TestSecondTeosdOnOneDataDir(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start()
	args := append(append([]string{}, tw.args...), "--apiport", fmt.Sprint(freePort(t)), "--rpcport", fmt.Sprint(freePort(t)))
	code, out := runToExit(t, args...)
	if code != 1 || !strings.Contains(out, "another teosd") {
		t.Fatalf("second teosd: exit %d, want 1 and a reason naming another teosd\n%s", code, out)
	}
	alice := newUser(t)
	alice.register(t, tw)
	tw.stop()
}

// TestSecondTeosdDuringImport: a teosd started while another one imports rust-teos's
// database into the same data dir refuses at once. Before, it imported too and renamed its
// own teos.db into place: the one of the two already running then wrote to a file without a
// name, and everything it acknowledged was gone at the next start.
func TestSecondTeosdDuringImport(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	rt := newRustTower(t, node, c)
	tw := newTower(t, node, "")
	netDir := filepath.Join(tw.dataDir, "regtest")
	rt.write(t, filepath.Join(netDir, "teos_db.sql3"))

	killPausedImport := startPausedImport(t, tw.args...)

	code, out := runToExit(t, tw.args...)
	if code != 1 || !strings.Contains(out, "in use by another teosd") {
		t.Fatalf("second teosd during the import: exit %d, want 1 and a reason naming another teosd\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(netDir, "teos.db")); !os.IsNotExist(err) {
		t.Fatalf("teos.db written while the first import was under way: %v", err)
	}
	killPausedImport()

	tw.start()
	rt.check(t, tw, false)
	tw.stop()
}

// TestSecondImportIntoNewDataDir: two teosd --importrustteos into a data dir that has no
// network dir yet. The first creates the network dir and locks it before it imports, so the
// second refuses at once. Before, the first's import created the dir without locking it, the
// second locked it, imported its own copy and renamed it over the first's teos.db.
func TestSecondImportIntoNewDataDir(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	rt := newRustTower(t, node, c)
	tw := newTower(t, node, "")
	netDir := filepath.Join(tw.dataDir, "regtest")
	elsewhere := filepath.Join(t.TempDir(), "backup.sql3")
	rt.write(t, elsewhere)
	args := append(append([]string{}, tw.args...), "--importrustteos", elsewhere)

	killPausedImport := startPausedImport(t, args...)
	code, out := runToExit(t, args...)
	if code != 1 || !strings.Contains(out, "in use by another teosd") {
		t.Fatalf("second import during the first: exit %d, want 1 and a reason naming another teosd\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(netDir, "teos.db")); !os.IsNotExist(err) {
		t.Fatalf("teos.db written while the first import was under way: %v", err)
	}
	killPausedImport()

	tw.start("--importrustteos", elsewhere) // the killed import left nothing in the way
	rt.check(t, tw, false)
	tw.stop()
}

// startPausedImport starts teosd with args and the import pause hook, and returns once its
// import paused with users and appointments in its temporary file; kill ends it.
func startPausedImport(t *testing.T, args ...string) (kill func()) {
	t.Helper()
	first := exec.Command(teosdBin, args...)
	first.Env = append(os.Environ(), "TEOSD_TEST_IMPORT_PAUSE=1")
	stderr, err := first.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	btcdtest.DieWithParent(first, syscall.SIGKILL)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	kill = sync.OnceFunc(func() { _ = first.Process.Kill(); _ = first.Wait() })
	t.Cleanup(kill)
	paused := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
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
		t.Fatal("the first teosd's import never paused")
	}
	return kill
}
