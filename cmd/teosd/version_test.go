package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/teos-go/teos/pkg/wtcrypto"
)

func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"--version", "-V"} {
		var out, errb bytes.Buffer
		// A data dir that does not exist: --version must not need one.
		code := run(context.Background(), []string{"--datadir", t.TempDir() + "/none", arg}, &out, &errb)
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errb.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "teosd ") ||
			!strings.HasPrefix(lines[1], "secp256k1: "+wtcrypto.Secp256k1Implementation()+" ") {
			t.Fatalf("%s printed %q", arg, out.String())
		}
	}
}
