package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store/pgstore"
)

// TestSharedPostgresAllowlist: two instances in allowlist mode on one database share the
// list: a user id added with teos-cli through one instance registers through the other at
// once, and removed through the other, it is refused by the first.
func TestSharedPostgresAllowlist(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	node := startNode(t)
	toml := fmt.Sprintf("database_url = %q\nregistration = \"allowlist\"\n", pg.NewDatabase(t))
	a, b := newTower(t, node, toml), newTower(t, node, toml)
	a.start()
	waitLog(t, a, "leadership acquired", 1)
	b.start()
	waitLog(t, b, "following: another instance leads", 1)

	u := newUser(t)
	refused := `{"error":"User not allowed to register with this tower","error_code":65}`
	register := func(tw *tower) (int, string) {
		code, raw := post(t, tw.apiURL, "/register", map[string]string{"user_id": u.id.String()}, nil)
		return code, string(raw)
	}
	if code, raw := register(b); code != http.StatusBadRequest || raw != refused {
		t.Fatalf("unknown id through b: %d %s, want 400 %s", code, raw, refused)
	}
	var added struct {
		Allowed, Changed bool
	}
	a.cliOK(t, &added, "adduser", u.id.String()) // through the leader
	if !added.Allowed || !added.Changed {
		t.Fatalf("adduser printed %+v", added)
	}
	u.register(t, b) // through the follower, with no wait
	u.add(t, b, randomAppointment(t, 100))
	var ids []string
	b.cliOK(t, &ids, "getallowedusers")
	if !slices.Equal(ids, []string{u.id.String()}) {
		t.Fatalf("getallowedusers through b = %v", ids)
	}
	b.cliOK(t, &added, "removeuser", u.id.String()) // through the follower
	if code, raw := register(a); code != http.StatusBadRequest || raw != refused {
		t.Fatalf("renewal through a after removeuser through b: %d %s", code, raw)
	}
	a.stop()
	b.stop()
}

// TestSharedPostgresMaxStoredBytes: max_stored_bytes counts what every instance stored: once
// appointments added through one instance take the database past the cap, the other refuses
// new registrations.
func TestSharedPostgresMaxStoredBytes(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	node := startNode(t)
	url := pg.NewDatabase(t)
	// The schema's own size, then a cap 300 kB above it.
	s, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"})
	if err != nil {
		t.Fatal(err)
	}
	base, err := s.StoredBytes()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	const capAbove = 300_000
	toml := fmt.Sprintf("database_url = %q\nmax_stored_bytes = %d\n", url, base+capAbove)
	a, b := newTower(t, node, toml), newTower(t, node, toml)
	a.start()
	waitLog(t, a, "leadership acquired", 1)
	b.start()
	waitLog(t, b, "following: another instance leads", 1)

	alice, bob := newUser(t), newUser(t)
	alice.register(t, a)
	bob.register(t, b) // under the cap
	// About twice the headroom, through a.
	for range 2 * capAbove / 750 {
		alice.add(t, a, randomAppointment(t, 750)) // the largest blob add_appointment's 2 kB body holds
	}
	carol := newUser(t)
	code, raw := post(t, b.apiURL, "/register", map[string]string{"user_id": carol.id.String()}, nil)
	full := `{"error":"The tower is not accepting registrations: its storage is full","error_code":65}`
	if code != http.StatusBadRequest || string(raw) != full {
		t.Fatalf("registration through b past the cap: %d %s, want 400 %s", code, raw, full)
	}
	waitLog(t, b, "stored bytes at the cap", 1) // written beside the answer, maybe just after it
	// Users already registered keep adding.
	bob.add(t, b, randomAppointment(t, 100))
	a.stop()
	b.stop()
}
