package store

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// The locator filter's guard test: a teos.db goes through rounds of a child process doing
// random adds (some sharing a locator between users), deletions, bulk loads and filter
// rebuilds, concurrently, killed with SIGKILL at a random point (sometimes during its Close),
// between which the files are tampered with as operators do: a restored backup (with or
// without its filter file), the filter file of an earlier close put back, the filter file
// removed. After every round, with the saved filter loaded or built, every locator of the
// index must be found by a block's lookup, and every acknowledged add not deleted since must
// be stored.

const crashChildEnv = "TEOS_LOCFILTER_CRASH_CHILD"

// crashModel is what the children acknowledged: appointments certainly stored (UUID ->
// locator) and those a kill left undecided.
type crashModel struct {
	stored    map[teos.UUID]teos.Locator
	uncertain map[teos.UUID]bool
}

func (m crashModel) clone() crashModel {
	c := crashModel{stored: make(map[teos.UUID]teos.Locator), uncertain: make(map[teos.UUID]bool)}
	for k, v := range m.stored {
		c.stored[k] = v
	}
	for k := range m.uncertain {
		c.uncertain[k] = true
	}
	return c
}

type crashSnapshot struct {
	db, filter string // filter "" if there was none
	model      crashModel
}

func TestLocatorFilterRandomCrashesAndStaleFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := rand.Uint64()
	if s := os.Getenv("TEOS_LOCFILTER_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (TEOS_LOCFILTER_CRASH_SEED reruns it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	path := filepath.Join(dir, "teos.db")
	model := crashModel{stored: make(map[teos.UUID]teos.Locator), uncertain: make(map[teos.UUID]bool)}
	var snaps []crashSnapshot
	var oldFilters []string
	loaded := 0
	const rounds = 24
	for round := range rounds {
		// Tamper with the files first, as an operator might.
		action := "none"
		// If no round has loaded a saved filter yet, the last two make sure one does: a clean
		// close, then no tampering (a seed once drew a disrupting action after every clean close).
		ensureLoad := loaded == 0 && round >= rounds-2
		if round > 1 && !(ensureLoad && round == rounds-1) {
			switch rng.IntN(9) {
			case 0:
				if len(snaps) > 0 { // restore a backup of both files
					sn := snaps[rng.IntN(len(snaps))]
					crashCopy(t, sn.db, path)
					if sn.filter != "" {
						crashCopy(t, sn.filter, path+filterFileSuffix)
					} else {
						_ = os.Remove(path + filterFileSuffix)
					}
					model, action = sn.model.clone(), "restored db and filter"
				}
			case 1:
				if len(snaps) > 0 { // restore the database only
					sn := snaps[rng.IntN(len(snaps))]
					crashCopy(t, sn.db, path)
					model, action = sn.model.clone(), "restored db only"
				}
			case 2:
				if len(oldFilters) > 0 {
					crashCopy(t, oldFilters[rng.IntN(len(oldFilters))], path+filterFileSuffix)
					action = "old filter file put back"
				}
			case 3:
				_ = os.Remove(path + filterFileSuffix)
				action = "filter file removed"
			case 4: // an older teosd, unaware of the filter, adds appointments
				for _, a := range olderBinaryAdds(t, path, rng, 1+rng.IntN(20)) {
					delete(model.uncertain, a.UUID())
					model.stored[a.UUID()] = a.Locator
				}
				action = "older binary wrote"
			case 5:
				var id int
				compactInPlace(t, path, &id, false)
				action = "compacted"
			}
		}
		st := crashVerify(t, path, model, rng.IntN(2) == 0)
		if st.Loaded {
			loaded++
		}
		clean := rng.IntN(3) == 0 || (ensureLoad && round == rounds-2)
		killAt := 20 + rng.IntN(400)
		killInClose := !clean && rng.IntN(4) == 0
		t.Logf("round %d: %s; filter %s; child %s", round, action, map[bool]string{true: "loaded", false: "built"}[st.Loaded],
			map[bool]string{true: "closes cleanly", false: fmt.Sprintf("killed after %d acks (in Close: %v)", killAt, killInClose)}[clean])
		exited := crashChild(t, path, rng.Uint64(), clean, killAt, killInClose, &model)
		if exited && rng.IntN(2) == 0 { // a backup of a cleanly closed store
			sn := crashSnapshot{db: filepath.Join(dir, fmt.Sprintf("backup%d.db", round)), model: model.clone()}
			crashCopy(t, path, sn.db)
			if _, err := os.Stat(path + filterFileSuffix); err == nil {
				sn.filter = sn.db + filterFileSuffix
				crashCopy(t, path+filterFileSuffix, sn.filter)
			}
			snaps = append(snaps, sn)
		}
		if _, err := os.Stat(path + filterFileSuffix); err == nil {
			old := filepath.Join(dir, fmt.Sprintf("filter%d", round))
			crashCopy(t, path+filterFileSuffix, old)
			oldFilters = append(oldFilters, old)
		}
	}
	crashVerify(t, path, model, true)
	if loaded == 0 {
		t.Errorf("the saved filter was never loaded in %d rounds: the test did not exercise it", rounds)
	}
	t.Logf("saved filter loaded in %d of %d rounds", loaded, rounds)
}

// olderBinaryAdds adds n appointments of new users in bare bbolt transactions, as a teosd
// that predates the filter does, and returns them.
func olderBinaryAdds(t *testing.T, path string, rng *rand.Rand, n int) []*Appointment {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []*Appointment
	for range n {
		var l teos.Locator
		for i := range l {
			l[i] = byte(rng.Uint32())
		}
		u := testUser(1000 + rng.IntN(1000))
		a := testAppointment(u, l, 10)
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			if err := putUser(b, u, UserInfo{}, false, UserInfo{AvailableSlots: 100, SubscriptionExpiry: 1 << 30}); err != nil {
				return err
			}
			accept := func(u UserInfo, _ *Appointment, _ bool) (UserInfo, error) { return u, nil }
			if _, err := upsertAppointment(b, a, encodeAppointment(a), accept, nil); err != nil {
				return err
			}
			return b.flushCounts()
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// crashVerify opens the store (waiting for its filter or not) and checks that every locator
// of the index is found and every certain appointment is stored; it closes the store cleanly
// (saving the filter) and returns the filter's state at open.
func crashVerify(t *testing.T, path string, m crashModel, wait bool) LocatorFilterStats {
	t.Helper()
	s := mustOpen(t, path, &Options{NoSync: true})
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	st := s.LocatorFilterStats()
	if wait {
		st = waitFilter(t, s)
	}
	crashCheckIndex(t, s)
	for id, loc := range m.stored {
		a, err := s.Appointment(id)
		if err != nil || a.Locator != loc {
			t.Fatalf("acknowledged appointment %s (locator %s): %v", id, loc, err)
		}
	}
	return st
}

// crashCheckIndex checks that a block's lookup finds every appointment of the index.
func crashCheckIndex(t *testing.T, s *Store) {
	t.Helper()
	want := make(map[teos.Locator]int)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktLocatorIdx).ForEach(func(k, _ []byte) error {
			want[teos.Locator(k[:teos.LocatorLen])]++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	locs := make([]teos.Locator, 0, len(want))
	for l := range want {
		locs = append(locs, l)
	}
	found, err := s.AppointmentsByLocators(locs)
	if err != nil {
		t.Fatal(err)
	}
	for l, n := range want {
		if len(found[l]) != n {
			t.Fatalf("locator %s: a block finds %d of its %d appointments (filter %+v)", l, len(found[l]), n, s.LocatorFilterStats())
		}
	}
}

// crashChild runs one child over path and folds what it acknowledged into m; true if it
// closed cleanly.
func crashChild(t *testing.T, path string, seed uint64, clean bool, killAt int, killInClose bool, m *crashModel) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLocatorFilterCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, fmt.Sprintf("TEOS_LOCFILTER_CHILD_SEED=%d", seed))
	if clean || killInClose {
		cmd.Env = append(cmd.Env, fmt.Sprintf("TEOS_LOCFILTER_CHILD_OPS=%d", killAt))
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	defer kill() // also if a check below fails
	acks, closed := 0, false
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "a", "d": // intent: undecided until acknowledged
			m.uncertain[parseUUID(t, f[1])] = true
			if f[0] == "d" {
				delete(m.stored, parseUUID(t, f[1]))
			}
		case "A":
			id := parseUUID(t, f[1])
			delete(m.uncertain, id)
			m.stored[id] = teos.Locator(parseHex(t, f[2]))
			acks++
		case "D":
			id := parseUUID(t, f[1])
			delete(m.uncertain, id)
			delete(m.stored, id)
			acks++
		case "closing":
			if killInClose {
				kill()
			}
		case "closed":
			closed = true
		case "fail":
			t.Fatalf("child: %s", line)
		}
		if !clean && !killInClose && acks >= killAt {
			kill()
		}
	}
	err = cmd.Wait()
	if !killed && err != nil {
		t.Fatalf("child: %v", err)
	}
	return closed && !killed
}

// TestLocatorFilterCrashChild is the child of TestLocatorFilterRandomCrashesAndStaleFiles.
func TestLocatorFilterCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestLocatorFilterRandomCrashesAndStaleFiles")
	}
	seed, _ := strconv.ParseUint(os.Getenv("TEOS_LOCFILTER_CHILD_SEED"), 10, 64)
	ops, _ := strconv.Atoi(os.Getenv("TEOS_LOCFILTER_CHILD_OPS")) // 0: until killed
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		outMu.Unlock()
	}
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		say("fail open: %v", err)
		return
	}
	// The child checks too, right at open: a loaded filter is checked before anything is added.
	crashCheckIndex(t, s)
	users := []teos.UserID{testUser(1), testUser(2), testUser(3)}
	for _, u := range users {
		if _, err := s.UpdateUser(u, func(UserInfo, bool) (UserInfo, error) {
			return UserInfo{AvailableSlots: 1 << 30, SubscriptionExpiry: 1 << 30}, nil
		}); err != nil {
			say("fail register: %v", err)
			return
		}
	}
	// Each worker writes for one user only, so the order of its acknowledgements is the order
	// of its commits for every UUID it touches; locators are shared between users.
	var mu sync.Mutex
	var known []teos.Locator // locators stored at some point: reused by other users
	ids := make([][]teos.UUID, len(users))
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktLocatorIdx).ForEach(func(k, _ []byte) error {
			l, id := teos.Locator(k[:teos.LocatorLen]), teos.UUID(k[teos.LocatorLen:])
			known = append(known, l)
			for i, u := range users {
				if teos.NewUUID(l, u) == id {
					ids[i] = append(ids[i], id)
				}
			}
			return nil
		})
	})
	accept := func(u UserInfo, _ *Appointment, _ bool) (UserInfo, error) { return u, nil }
	var done sync.WaitGroup
	var count sync.Mutex
	n := 0
	more := func() bool { // false once ops acknowledged writes were made (clean mode)
		count.Lock()
		defer count.Unlock()
		n++
		return ops == 0 || n <= ops
	}
	worker := func(w int, seed uint64) {
		defer done.Done()
		rng := rand.New(rand.NewPCG(seed, 1))
		u := users[w]
		pick := func() (teos.Locator, teos.UserID) {
			mu.Lock()
			defer mu.Unlock()
			if len(known) > 0 && rng.IntN(3) == 0 {
				return known[rng.IntN(len(known))], u
			}
			var l teos.Locator
			for i := range l {
				l[i] = byte(rng.Uint32())
			}
			known = append(known, l)
			return l, u
		}
		for more() {
			switch op := rng.IntN(20); {
			case op < 10: // one add
				l, u := pick()
				a := testAppointment(u, l, 10)
				say("a %s %s", a.UUID(), hex.EncodeToString(l[:]))
				if _, err := s.UpsertAppointment(a, accept); err != nil {
					say("fail add: %v", err)
					return
				}
				say("A %s %s", a.UUID(), hex.EncodeToString(l[:]))
				ids[w] = append(ids[w], a.UUID())
			case op < 13: // a batch, or a bulk load
				var items []AppointmentUpsert
				var appts []*Appointment
				for range 1 + rng.IntN(8) {
					l, u := pick()
					a := testAppointment(u, l, 10)
					items = append(items, AppointmentUpsert{Appointment: a, Policy: accept})
					appts = append(appts, a)
					say("a %s %s", a.UUID(), hex.EncodeToString(l[:]))
				}
				var err error
				if op == 12 {
					err = s.BulkLoad(nil, dedupe(appts))
				} else {
					_, err = s.UpsertAppointments(items)
				}
				if err != nil {
					say("fail batch: %v", err)
					return
				}
				for _, a := range appts {
					say("A %s %s", a.UUID(), hex.EncodeToString(a.Locator[:]))
				}
				for _, a := range appts {
					ids[w] = append(ids[w], a.UUID())
				}
			case op < 19: // delete one or a few
				var del []teos.UUID
				for range 1 + rng.IntN(3) {
					mine := ids[w]
					if len(mine) == 0 {
						break
					}
					i := rng.IntN(len(mine))
					del = append(del, mine[i])
					mine[i] = mine[len(mine)-1]
					ids[w] = mine[:len(mine)-1]
				}
				for _, id := range del {
					say("d %s", id)
				}
				if err := s.DeleteAppointments(del, rng.IntN(2) == 0); err != nil {
					say("fail delete: %v", err)
					return
				}
				for _, id := range del {
					say("D %s", id)
				}
			default: // a rebuild racing with the others
				s.filters.startBuild()
			}
		}
	}
	for i := range users {
		done.Add(1)
		go worker(i, seed+uint64(i))
	}
	done.Wait()
	say("closing")
	if err := s.Close(); err != nil {
		say("fail close: %v", err)
		return
	}
	say("closed")
}

// dedupe keeps the last of appointments sharing a UUID, as a bulk load needs.
func dedupe(appts []*Appointment) []*Appointment {
	seen := make(map[teos.UUID]int)
	var out []*Appointment
	for _, a := range appts {
		if i, ok := seen[a.UUID()]; ok {
			out[i] = a
			continue
		}
		seen[a.UUID()] = len(out)
		out = append(out, a)
	}
	return out
}

func parseHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseUUID(t *testing.T, s string) teos.UUID {
	t.Helper()
	return teos.UUID(parseHex(t, s))
}

// crashCopy copies a file with its modification time, as cp -p, rsync -a and tar do.
func crashCopy(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(to, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}
