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

// rust-teos's teosd (clap 2) prints its help on stdout and exits 0, so `teosd --help | less`
// and `teosd --help > flags.txt` work; a command line it cannot parse is one error on stderr
// (not the whole usage) and exit 1.
func TestHelpAndBadFlags(t *testing.T) {
	none := t.TempDir() + "/none"
	for _, arg := range []string{"--help", "-h", "-help"} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"--datadir", none, arg}, &out, &errb)
		if code != 0 || !strings.HasPrefix(out.String(), "Usage: teosd") || !strings.Contains(out.String(), "-btcrpcuser") || errb.Len() != 0 {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q; want the usage on stdout, exit 0", arg, code, out.String(), errb.String())
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "teosd: parse flags: flag provided but not defined: -nope\nRun teosd --help for the flags.\n"},
		{[]string{"--apiport", "70000"}, "teosd: parse flags: invalid value \"70000\" for flag -apiport: want a number 0-65535: strconv.ParseUint: parsing \"70000\": value out of range\nRun teosd --help for the flags.\n"},
		{[]string{"extra"}, "teosd: unexpected argument \"extra\"\nRun teosd --help for the flags.\n"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"--datadir", none}, tc.args...), &out, &errb)
		if code != 1 || out.Len() != 0 || errb.String() != tc.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 1 and stderr %q", tc.args, code, out.String(), errb.String(), tc.want)
		}
	}
}
