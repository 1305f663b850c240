package config

import (
	"errors"
	"flag"
)

// ErrVersion is returned by Load when --version (or -V, as in rust-teos) is given: the
// caller prints its version and exits 0 without reading further.
var ErrVersion = errors.New("version requested")

func addVersionFlag(fs *flag.FlagSet) {
	fs.Bool("version", false, "print the version and the secp256k1 implementation, then exit")
	fs.Bool("V", false, "same as --version")
}

func versionRequested(fs *flag.FlagSet) bool {
	asked := false
	fs.Visit(func(f *flag.Flag) {
		if (f.Name == "version" || f.Name == "V") && f.Value.String() == "true" {
			asked = true
		}
	})
	return asked
}
