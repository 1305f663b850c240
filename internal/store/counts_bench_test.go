package store

import (
	"path/filepath"
	"testing"
)

// BenchmarkCounts measures one metrics scrape's worth of counting on 200k appointments.
func BenchmarkCounts(b *testing.B) {
	const n = 200_000
	s := mustOpen(b, filepath.Join(b.TempDir(), "teos.db"), &Options{NoSync: true})
	defer s.Close()
	fillAppointments(b, s, n, 200)
	for b.Loop() {
		_, w, _, err := s.Counts()
		if err != nil {
			b.Fatal(err)
		}
		if w != n {
			b.Fatalf("%d appointments, want %d", w, n)
		}
	}
}
