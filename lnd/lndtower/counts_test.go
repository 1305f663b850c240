package lndtower

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/store"
)

// walked counts the records by walking the buckets, as Counts did before the counts were kept.
func walked(t *testing.T, db *DB) (sessions, updates int) {
	t.Helper()
	err := db.s.ExtView(extName, func(b *bolt.Bucket) error {
		if s := sub(b, bktSessions); s != nil {
			sessions = s.Stats().KeyN
		}
		if u := sub(b, bktUpdates); u != nil {
			updates = u.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sessions, updates
}

// checkCounts fails unless Counts gives want and agrees with a walk of the buckets.
func checkCounts(t *testing.T, db *DB, what string, wantSessions, wantUpdates int) {
	t.Helper()
	s, u, err := db.Counts()
	ws, wu := walked(t, db)
	if err != nil || s != wantSessions || u != wantUpdates || s != ws || u != wu {
		t.Fatalf("%s: counts %d sessions, %d updates (%v); walk %d, %d; want %d, %d", what, s, u, err, ws, wu, wantSessions, wantUpdates)
	}
}

// The stored counts follow every write that adds or removes sessions and updates, and only
// those: refused writes, a retried CreateSession, a hint repeated in a session.
func TestCountsKeptOnWrite(t *testing.T) {
	db := openDB(t)
	checkCounts(t, db, "empty", 0, 0)

	a := addSession(t, db, testPolicy(10))
	b := addSession(t, db, testPolicy(2))
	checkCounts(t, db, "two sessions", 2, 0)
	// The client retries CreateSession before any update: replaced, not added.
	if err := db.InsertSessionInfo(&wtdb.SessionInfo{ID: b, Policy: testPolicy(2)}); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, db, "retried session", 2, 0)

	for seq := uint16(1); seq <= 3; seq++ {
		if _, err := db.InsertStateUpdate(stateUpdate(t, a, seq, byte(seq))); err != nil {
			t.Fatal(err)
		}
	}
	// The same hint again, as the next update: it replaces the stored one.
	if _, err := db.InsertStateUpdate(stateUpdate(t, a, 4, 3)); err != nil {
		t.Fatal(err)
	}
	for seq := uint16(1); seq <= 2; seq++ {
		if _, err := db.InsertStateUpdate(stateUpdate(t, b, seq, 10+byte(seq))); err != nil {
			t.Fatal(err)
		}
	}
	checkCounts(t, db, "updates", 2, 5)

	// Refused: past the maximum, out of order, an unknown session, a session already used.
	if _, err := db.InsertStateUpdate(stateUpdate(t, b, 3, 20)); !errors.Is(err, wtdb.ErrSessionConsumed) {
		t.Fatalf("past the max: %v", err)
	}
	if _, err := db.InsertStateUpdate(stateUpdate(t, a, 9, 21)); err == nil {
		t.Fatal("out-of-order update accepted")
	}
	if _, err := db.InsertStateUpdate(stateUpdate(t, wtdb.SessionID{2}, 1, 22)); !errors.Is(err, wtdb.ErrSessionNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	if err := db.InsertSessionInfo(&wtdb.SessionInfo{ID: a, Policy: testPolicy(10)}); !errors.Is(err, wtdb.ErrSessionAlreadyExists) {
		t.Fatalf("used session created again: %v", err)
	}
	checkCounts(t, db, "after refusals", 2, 5)

	if err := db.DeleteSession(a); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, db, "a deleted", 1, 2)
	if err := db.DeleteSession(a); !errors.Is(err, wtdb.ErrSessionNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := db.DeleteSession(b); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, db, "all deleted", 0, 0)
}

// hasRecord reports whether the counts record is stored and readable.
func hasRecord(t *testing.T, db *DB) bool {
	t.Helper()
	var ok bool
	if err := db.s.ExtView(extName, func(b *bolt.Bucket) error { ok = len(b.Get(keyCounts)) == 16; return nil }); err != nil {
		t.Fatal(err)
	}
	return ok
}

// A file written before the counts were kept, or whose counts record cannot be read or has
// fallen out of step, is counted by a walk, and the next counted write stores the right
// counts: derived data never makes the tower refuse a client.
func TestCountsRepaired(t *testing.T) {
	db := openDB(t)
	a := addSession(t, db, testPolicy(10))
	unused := addSession(t, db, testPolicy(1))
	for seq := uint16(1); seq <= 2; seq++ {
		if _, err := db.InsertStateUpdate(stateUpdate(t, a, seq, byte(seq))); err != nil {
			t.Fatal(err)
		}
	}
	set := func(v []byte) {
		t.Helper()
		err := db.s.ExtUpdate(extName, func(b *bolt.Bucket) error {
			if v == nil {
				return b.Delete(keyCounts)
			}
			return b.Put(keyCounts, v)
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	set(nil) // an older file
	checkCounts(t, db, "no counts record", 2, 2)
	if _, err := db.InsertStateUpdate(stateUpdate(t, a, 3, 3)); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, db, "first write after", 2, 3)

	set([]byte{1, 2, 3}) // unreadable
	checkCounts(t, db, "short record", 2, 3)
	// A write that changes no count (a retried CreateSession) stores them too.
	if err := db.InsertSessionInfo(&wtdb.SessionInfo{ID: unused, Policy: testPolicy(1)}); err != nil {
		t.Fatal(err)
	}
	if !hasRecord(t, db) {
		t.Fatal("counts not stored by the write after a short record")
	}
	checkCounts(t, db, "after the retried session", 2, 3)

	set(make([]byte, 16)) // out of step: 0 sessions, 0 updates
	if err := db.DeleteSession(a); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, db, "delete over counts out of step", 1, 0)
}

// BenchmarkCounts compares reading the stored counts with the walk of both buckets every
// scrape did before (Bucket.Stats), at 100,000 state updates in 1,000 sessions.
func BenchmarkCounts(b *testing.B) {
	s, err := store.Open(filepath.Join(b.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	db := NewDB(s, nil)
	const sessions, perSession = 1000, 100
	blobLen := blob.Size(mustKit(b))
	err = db.countedUpdate(func(t *tally, sb, ub, _ *bolt.Bucket) error {
		for i := range sessions {
			id := wtdb.SessionID{2, byte(i >> 8), byte(i)}
			if err := sb.Put(id[:], make([]byte, 40)); err != nil {
				return err
			}
			t.sessions++
			for j := range perSession {
				txid := chainhash.Hash{byte(i >> 8), byte(i), byte(j)}
				if err := ub.Put(updateKey(blob.NewBreachHintFromHash(&txid), id), make([]byte, blobLen+8)); err != nil {
					return err
				}
				t.updates++
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("stored", func(b *testing.B) {
		for b.Loop() {
			if s, u, err := db.Counts(); err != nil || s != sessions || u != sessions*perSession {
				b.Fatal(s, u, err)
			}
		}
	})
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			var s, u int
			err := db.s.ExtView(extName, func(bk *bolt.Bucket) error {
				s, u = sub(bk, bktSessions).Stats().KeyN, sub(bk, bktUpdates).Stats().KeyN
				return nil
			})
			if err != nil || s != sessions || u != sessions*perSession {
				b.Fatal(s, u, err)
			}
		}
	})
}

func mustKit(b *testing.B) blob.JusticeKit {
	ct, err := blob.TypeAltruistAnchorCommit.CommitmentType(nil)
	if err != nil {
		b.Fatal(err)
	}
	kit, err := ct.EmptyJusticeKit()
	if err != nil {
		b.Fatal(err)
	}
	return kit
}
