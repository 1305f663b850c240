// Package scripts_test runs the shell scripts of this directory against fakes.
package scripts_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestInstallDebianRemovesPolicy: install-debian.sh puts a policy-rc.d (exit 101: start no
// service) around apt-get. When apt-get failed (a host without network), set -e ended the
// script before it removed the file, and every package installed on that host later had its
// services kept from starting. apt-get is a fake here, failing or not; the script must
// remove the file either way and fail only in the first case.
func TestInstallDebianRemovesPolicy(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the script calls sudo unless it runs as root")
	}
	for _, tc := range []struct {
		name   string
		aptRC  int
		wantOK bool
	}{{"apt-get fails", 100, false}, {"apt-get succeeds", 0, true}} {
		dir := t.TempDir()
		bin := filepath.Join(dir, "bin")
		if err := os.Mkdir(bin, 0o700); err != nil {
			t.Fatal(err)
		}
		// It also checks that the policy is in place while it runs (else the test says nothing).
		fake := "#!/bin/sh\necho \"fake apt-get $*\" >&2\n[ -x \"$TEOS_POLICY_RC_D\" ] || exit 99\nexit " + strconv.Itoa(tc.aptRC) + "\n"
		if err := os.WriteFile(filepath.Join(bin, "apt-get"), []byte(fake), 0o700); err != nil {
			t.Fatal(err)
		}
		policy := filepath.Join(dir, "policy-rc.d")
		cmd := exec.Command("sh", "install-debian.sh", "no-such-package") // no services to disable
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TEOS_POLICY_RC_D="+policy)
		out, err := cmd.CombinedOutput()
		if (err == nil) != tc.wantOK {
			t.Fatalf("%s: the script returned %v, want success %v:\n%s", tc.name, err, tc.wantOK, out)
		}
		if _, err := os.Stat(policy); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: %s left behind (%v):\n%s", tc.name, policy, err, out)
		}
	}
}
