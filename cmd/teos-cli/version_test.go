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
	code, out, errOut := runCLI("--datadir", none, "help")
	if code != 0 || !strings.HasPrefix(out, "Usage: teos-cli") || !strings.Contains(out, "gettowerinfo") || errOut != "" {
		t.Fatalf("help: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
