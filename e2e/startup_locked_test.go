package e2e

import (
	"fmt"
	"strings"
	"testing"
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
