package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

	first := exec.Command(teosdBin, tw.args...)
	first.Env = append(os.Environ(), "TEOSD_TEST_IMPORT_PAUSE=1")
	stderr, err := first.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	btcdtest.DieWithParent(first, syscall.SIGKILL)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Process.Kill(); _ = first.Wait() }()
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

	code, out := runToExit(t, tw.args...)
	if code != 1 || !strings.Contains(out, "in use by another teosd") {
		t.Fatalf("second teosd during the import: exit %d, want 1 and a reason naming another teosd\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(netDir, "teos.db")); !os.IsNotExist(err) {
		t.Fatalf("teos.db written while the first import was under way: %v", err)
	}
	_ = first.Process.Kill()
	_ = first.Wait()

	tw.start()
	rt.check(t, tw, false)
	tw.stop()
}
