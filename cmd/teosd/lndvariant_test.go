package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLndVariantLinksEverySourceFile: the teosd built from lnd/ (with the lnd front end) is
// this package's sources linked into lnd/cmd/teosd, so a file added here must be linked there
// too, or the variant stops building.
func TestLndVariantLinksEverySourceFile(t *testing.T) {
	sources, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	variant := filepath.Join("..", "..", "lnd", "cmd", "teosd")
	for _, f := range sources {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		link := filepath.Join(variant, f)
		target, err := os.Readlink(link)
		if err != nil {
			t.Errorf("%s: not linked into %s (ln -s ../../../cmd/teosd/%s %s): %v", f, variant, f, link, err)
			continue
		}
		if want := filepath.Join("..", "..", "..", "cmd", "teosd", f); target != want {
			t.Errorf("%s links to %s, want %s", link, target, want)
		}
	}
}
