//go:build !unix

package tlsgen

// lockDir does not lock where there is no flock: processes sharing a data dir must not start
// at once on a fresh one there.
func lockDir(string) (unlock func(), err error) { return func() {}, nil }
