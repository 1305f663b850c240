package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// printVersion answers --version: the first line has rust-teos's "<name> <version>" shape,
// the second says which secp256k1 code signs and recovers (libsecp256k1 needs a cgo build).
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "teosd %s\n", teos.Version)
	fmt.Fprintf(w, "secp256k1: %s (%s, %s/%s)\n", wtcrypto.Secp256k1Implementation(),
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
