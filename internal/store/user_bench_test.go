package store

import (
	"path/filepath"
	"testing"
)

// BenchmarkUser is the gatekeeper's read of a user on every authenticated request.
func BenchmarkUser(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "teos.db"), nil)
	b.Cleanup(func() { _ = s.Close() })
	const users = 1024
	registerAll(b, s, users, ^uint32(0), ^uint32(0))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := s.User(testUser(i % users)); !ok || err != nil {
			b.Fatal(ok, err)
		}
		i++
	}
}
