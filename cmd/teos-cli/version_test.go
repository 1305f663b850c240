package main

import (
	"strings"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
)

// rust-teos's teos-cli answers -V/--version and a help subcommand; neither needs a tower or a
// data dir.
func TestVersionAndHelp(t *testing.T) {
	none := t.TempDir() + "/none"
	for _, arg := range []string{"--version", "-V"} {
		code, out, errOut := runCLI("--datadir", none, arg)
		if code != 0 || out != "teos-cli "+teos.Version+"\n" || errOut != "" {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
	// clap 2 prints the help on stdout, exit 0, for --help, -h, the help subcommand (with a
	// command's name or not) and -h/--help after a command.
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"help", "getuser"}, {"getuser", "--help"},
		{"getallappointments", "-h"}, {"getappointments", "--help"}} {
		code, out, errOut := runCLI(append([]string{"--datadir", none}, args...)...)
		if code != 0 || !strings.HasPrefix(out, "Usage: teos-cli") || !strings.Contains(out, "gettowerinfo") ||
			!strings.Contains(out, "-rpcport") || errOut != "" {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q; want the usage on stdout, exit 0", args, code, out, errOut)
		}
	}
	code, out, errOut := runCLI("--datadir", none, "help", "frobnicate")
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "teos-cli: unknown command \"frobnicate\"\nUsage: teos-cli") {
		t.Fatalf("help frobnicate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// rust-teos's teos-cli exits 1 on a command line it cannot understand, as on any other failure.
func TestUsageErrorsExitOne(t *testing.T) {
	none := t.TempDir() + "/none"
	for _, args := range [][]string{
		{"--no-such-flag"},
		{},
		{"no_such_command"},
		{"getappointments"},
		{"--rpcport", "70000", "gettowerinfo"},
	} {
		code, out, errOut := runCLI(append([]string{"--datadir", none}, args...)...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "teos-cli: ") || strings.Count(errOut, "Usage: teos-cli") > 1 {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 and a message", args, code, errOut)
		}
	}
}
