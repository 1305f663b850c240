package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/store"
)

// TestLocatorFilterAcrossRestarts runs a real teosd through the ways its saved locator filter
// can fall behind teos.db: a clean stop (the filter is saved and loaded), a kill -9 right after
// an acknowledged add, and an older filter file put back (a restore of that file alone). Every
// breach, one of them on a locator two users share, must still be answered.
func TestLocatorFilterAcrossRestarts(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	db := filepath.Join(tw.dataDir, "regtest", "teos.db")
	saved := db + ".locfilter"
	alice, bob := newUser(t), newUser(t)
	breaches := []*btcdtest.Breach{node.NewBreach(t), node.NewBreach(t), node.NewBreach(t), node.NewBreach(t)}

	tw.start()
	alice.register(t, tw)
	bob.register(t, tw)
	alice.add(t, tw, breachAppointment(t, breaches[0]))
	bob.add(t, tw, breachAppointment(t, breaches[0]))
	tw.stop()
	wantFilterLoaded(t, db, true) // teosd's clean stop saved a filter its next start trusts
	older := readFile(t, saved)   // holds only the first breach's locator

	tw.start()
	alice.add(t, tw, breachAppointment(t, breaches[1]))
	tw.kill() // right after the acknowledgement: the saved filter lacks this add

	tw.start()
	alice.add(t, tw, breachAppointment(t, breaches[2]))
	tw.stop()

	tw.start()
	alice.add(t, tw, breachAppointment(t, breaches[3]))
	tw.stop()

	// A start on the filter just saved: the breach is found through it.
	tw.start()
	c.send(t, breaches[3].Commitment)
	c.mine(t)
	c.waitInMempool(t, breaches[3].Penalty.TxHash(), time.Now())
	tw.stop()

	// The filter file of the first stop put back: it must not be trusted.
	if err := os.WriteFile(saved, older, 0o600); err != nil {
		t.Fatal(err)
	}
	tw.start()
	for _, b := range breaches[:3] {
		c.send(t, b.Commitment)
	}
	c.mine(t)
	for _, b := range breaches[:3] {
		c.waitInMempool(t, b.Penalty.TxHash(), time.Now())
	}
	c.mine(t)
	for _, b := range breaches {
		alice.waitResponded(t, tw, b)
	}
	bob.waitResponded(t, tw, breaches[0])
	tw.stop()
}

// wantFilterLoaded opens the stopped tower's store and checks whether its saved filter is
// used; the store is closed again cleanly, which saves the filter anew.
func wantFilterLoaded(t *testing.T, path string, want bool) {
	t.Helper()
	s, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	if got := s.LocatorFilterStats().Loaded; got != want {
		t.Fatalf("saved locator filter loaded: %v, want %v (%+v)", got, want, s.LocatorFilterStats())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
