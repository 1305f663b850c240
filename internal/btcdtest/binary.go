package btcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const installTimeout = 10 * time.Minute

// errBadEnv means $BTCD names no usable file: a configuration mistake, never a reason to skip.
var errBadEnv = errors.New("$BTCD is not an executable file")

// locateOnce runs the search, and possibly the install, once per test binary.
var locateOnce = sync.OnceValues(locate)

// Binary returns the path of a btcd executable: $BTCD, else <repo>/.bin/btcd, else whatever
// scripts/install-btcd.sh installs there. When none can be had the test is skipped, unless
// the environment says btcd is required (CI non-empty or TEOS_REQUIRE_BTCD=1): then it fails,
// so that a broken install never passes as a green run.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := locateOnce()
	switch {
	case err == nil:
		return path
	case errors.Is(err, errBadEnv) || btcdRequired():
		t.Fatalf("btcdtest: no btcd: %v", err)
	default:
		t.Skipf("btcdtest: no btcd (set CI or TEOS_REQUIRE_BTCD=1 to make this a failure): %v", err)
	}
	return ""
}

func btcdRequired() bool {
	return os.Getenv("CI") != "" || os.Getenv("TEOS_REQUIRE_BTCD") == "1"
}

func locate() (string, error) {
	if env := os.Getenv("BTCD"); env != "" {
		if !isExecutable(env) {
			return "", fmt.Errorf("%w: %q", errBadEnv, env)
		}
		return env, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".bin", "btcd")
	if isExecutable(bin) {
		return bin, nil
	}
	script := filepath.Join(root, "scripts", "install-btcd.sh")
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", script)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", script, err, out.Bytes())
	}
	if !isExecutable(bin) {
		return "", fmt.Errorf("%s succeeded but %s is missing", script, bin)
	}
	return bin, nil
}

// repoRoot walks up from the working directory (a package directory under go test) to go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
