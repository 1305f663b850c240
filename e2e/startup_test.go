package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runToExit runs teosd with args and returns its exit code and stderr.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(teosdBin, args...)
	var out strings.Builder
	cmd.Stderr = &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("teosd did not exit; stderr:\n%s", out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestStartupRefusals checks teosd refuses to start, with a reason, on a bitcoind that is on
// another network or unreachable.
func TestStartupRefusals(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")

	args := append(append([]string{}, tw.args...), "--btcnetwork", "mainnet")
	code, out := runToExit(t, args...)
	if code != 1 || !strings.Contains(out, "bitcoind is running on regtest but teosd is set to run on main") {
		t.Fatalf("wrong network: exit %d\n%s", code, out)
	}

	args = append(append([]string{}, tw.args...), "--btcrpcport", "1")
	code, out = runToExit(t, args...)
	if code != 1 || !strings.Contains(out, "bitcoind") {
		t.Fatalf("unreachable bitcoind: exit %d\n%s", code, out)
	}
}
