package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// chaosDuration is how long TestChaos keeps killing teosd and cutting bitcoind off; the
// default keeps the whole test well under a minute. Longer: go test ./e2e -run TestChaos
// -chaos.duration=5m -timeout 30m.
var chaosDuration = flag.Duration("chaos.duration", 12*time.Second, "how long TestChaos injects faults")

const (
	chaosUsers    = 4
	chaosBlockGap = 400 * time.Millisecond
	// chaosMargin: a tracker whose penalty is this close to 100 confirmations at the end may
	// have completed or not, depending on when its confirmation was counted; both are accepted.
	chaosMargin = 2
)

// TestChaos runs clients that keep adding appointments and renewing their subscriptions, and
// a miner that keeps mining (some blocks holding breaches the clients hold appointments for),
// while teosd is SIGKILLed and restarted at random moments, the link to btcd is cut and
// restored, and teosd's disk (a tmpfs, when one can be mounted) fills up and is freed. Every
// request is retried until it is answered, so each one ends with a receipt. At the end:
//   - every appointment with a receipt is stored: watched, or responded if its dispute was
//     mined (or gone with its slots refunded once its penalty is irrevocably resolved);
//   - every mined dispute's penalty is in btcd's mempool or chain;
//   - each user's subscription was renewed n times, at least as often as a renewal was
//     acknowledged and at most as often as one was sent (a renewal whose answer a kill cut off
//     is sent again, and may then count twice), as its expiry shows; its available_slots
//     equals n+1 times subscription_slots minus the slots of the appointments it holds (no
//     blob is invalid, so nothing is deleted without refund), and the locators listed are
//     exactly those held; the same holds in the bbolt file;
//   - the bbolt file passes tx.Check, and its buckets agree with each other: every index entry
//     has its appointment and vice versa, every tracker and every queued hand-over has its
//     appointment, the last block is btcd's tip.
func TestChaos(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	proxy := startProxy(t, node.RPCHost)
	tw := newTower(t, node, "")
	tw.args = append(tw.args, "--btcrpcport", proxy.port())
	diskFaults := true
	if err := tryMountTmpfs(t, tw.dataDir, 32<<20); err != nil {
		t.Logf("no disk-full episodes: %v", err)
		diskFaults = false
	}

	// Disputes are built before teosd starts: NewBreach may mine to mature a coinbase.
	nBreaches := min(6+int(*chaosDuration/(2*time.Second)), 80)
	breaches := make(chan *btcdtest.Breach, nBreaches)
	for range nBreaches {
		breaches <- node.NewBreach(t)
	}
	tw.start()
	towerID := tw.id // start rewrites tw.id on every restart; the clients read this copy

	run := &chaosRun{t: t, c: c, url: tw.apiURL, towerID: towerID, armed: make(chan *armedBreach, nBreaches)}
	users := make([]*chaosUser, chaosUsers)
	for i := range users {
		users[i] = &chaosUser{user: newUser(t), held: make(map[teos.Locator]*heldAppt)}
		reg := users[i].register(t, tw)
		users[i].slots, users[i].start, users[i].duration = reg.AvailableSlots, reg.SubscriptionStart, reg.SubscriptionExpiry-reg.SubscriptionStart
	}
	subscriptionSlots := users[0].slots

	stop := make(chan struct{})
	var clients, miner sync.WaitGroup
	for i, u := range users {
		clients.Go(func() { run.client(u, uint64(i), breaches, stop) })
	}
	minerStop := make(chan struct{})
	miner.Go(func() { run.mine(minerStop) })

	// Faults, from the test goroutine (tw.start may fail the test).
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills, outages, disksFull := 0, 0, 0
	for end := time.Now().Add(*chaosDuration); time.Now().Before(end) && !t.Failed(); {
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		switch n := rng.IntN(4); {
		case n == 0:
			proxy.down()
			time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
			proxy.up(t)
			outages++
			continue
		case n == 1 && diskFaults:
			free := fillDisk(t, tw.dataDir)
			time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
			free()
			disksFull++
			continue
		}
		tw.kill()
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		tw.start()
		kills++
	}

	close(stop)
	clients.Wait() // each finishes its request in flight, to its receipt
	close(minerStop)
	miner.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// One more block: once the tower's height reaches it, the watcher and responder are done
	// with every block holding a dispute.
	_, tip := c.mine(t)
	waitTowerAt(t, tw, tip)
	t.Logf("survived %d SIGKILLs, %d bitcoind outages and %d full disks in %v; %d blocks, %d disputes mined, %d appointments, %d renewals",
		kills, outages, disksFull, *chaosDuration, run.blocks, len(run.mined), run.appointments(), run.renewals())

	// Every mined dispute was answered: its penalty reached btcd, and its appointment
	// (one holder each) says so.
	for _, ab := range run.mined {
		penaltyID := ab.breach.Penalty.TxHash()
		var penaltyHeight uint32
		waitFor(t, "penalty of "+ab.breach.Commitment.TxHash().String(), func() bool {
			var known bool
			penaltyHeight, known = c.txState(t, penaltyID)
			return known
		})
		ab.penaltyHeight = penaltyHeight
	}
	tip = c.tip(t) // unchanged: nothing mines any more
	completed := 0
	granted := map[teos.UserID]uint32{}
	for _, u := range users {
		n, c := u.check(t, tw, tip, subscriptionSlots)
		granted[u.id] = n * subscriptionSlots
		completed += c
	}
	t.Logf("%d trackers completed and refunded; the store refused writes %d times, bitcoind was lost %d times (teosd log)",
		completed, strings.Count(tw.logs(), "store refuses writes"), strings.Count(tw.logs(), `msg="bitcoind unreachable"`))

	tw.stop()
	checkStore(t, filepath.Join(tw.dataDir, "regtest", "teos.db"), tip, subscriptionSlots, granted, users)
}

type chaosRun struct {
	t       *testing.T
	c       *chain
	url     string
	towerID teos.UserID
	armed   chan *armedBreach // appointments acknowledged, disputes not yet mined

	mu     sync.Mutex
	mined  []*armedBreach // guarded by mu until the miner stops
	blocks int
	users  []*chaosUser
}

// armedBreach is a dispute whose appointment one user holds.
type armedBreach struct {
	breach        *btcdtest.Breach
	owner         *chaosUser
	mined         bool   // the dispute was broadcast and mined; written by the miner
	penaltyHeight uint32 // 0 while unconfirmed; set at the end
}

type heldAppt struct {
	appt   teos.Appointment
	breach *armedBreach // nil for a plain appointment
}

type chaosUser struct {
	*user
	slots           uint32 // last receipt's available_slots
	held            map[teos.Locator]*heldAppt
	start, duration uint32 // of the first registration
	renewed         int    // renewals acknowledged
	renewTries      int    // renewal requests that may have reached the tower
}

func (r *chaosRun) renewals() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, u := range r.users {
		n += u.renewed
	}
	return n
}

func (r *chaosRun) appointments() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, u := range r.users {
		n += len(u.held)
	}
	return n
}

// client adds appointments until stop: mostly new random ones, some updates of one it holds
// (another blob, maybe another size), and each dispute it is handed. A request is retried
// until it has an answer, even after stop.
func (r *chaosRun) client(u *chaosUser, seed uint64, breaches <-chan *btcdtest.Breach, stop <-chan struct{}) {
	r.mu.Lock()
	r.users = append(r.users, u)
	r.mu.Unlock()
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	var plain []teos.Locator
	for {
		select {
		case <-stop:
			return
		default:
		}
		if rng.IntN(15) == 0 {
			reg, ok := r.renewUntilAnswered(u)
			if !ok {
				return
			}
			r.mu.Lock()
			u.renewed++
			u.slots = reg.AvailableSlots
			r.mu.Unlock()
			continue
		}
		var a teos.Appointment
		var ab *armedBreach
		switch n := rng.IntN(10); {
		case n == 0 && len(breaches) > 0:
			select {
			case b := <-breaches:
				a, ab = breachAppointment(r.t, b), &armedBreach{breach: b, owner: u}
			default:
				continue
			}
		case n < 3 && len(plain) > 0:
			a = randomAppointment(r.t, 1+rng.IntN(900))
			a.Locator = plain[rng.IntN(len(plain))]
		default:
			a = randomAppointment(r.t, 1+rng.IntN(900))
			plain = append(plain, a.Locator)
		}
		receipt, ok := r.addUntilAnswered(u, a)
		if !ok {
			return
		}
		r.mu.Lock()
		u.held[a.Locator] = &heldAppt{appt: a, breach: ab}
		u.slots = receipt.AvailableSlots
		r.mu.Unlock()
		if ab != nil {
			r.armed <- ab
		}
		time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
	}
}

// addUntilAnswered sends a until teosd answers 200, retrying through kills (connection
// refused or cut) and outages (503). Any other answer fails the test.
func (r *chaosRun) addUntilAnswered(u *chaosUser, a teos.Appointment) (addResp, bool) {
	req := u.addRequest(a)
	body, _ := json.Marshal(req)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		code, raw, err := tryPost(r.url+"/add_appointment", body)
		if err != nil || code == http.StatusServiceUnavailable {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var resp addResp
		if code != http.StatusOK || json.Unmarshal(raw, &resp) != nil {
			r.t.Errorf("add_appointment %s: %d %s", a.Locator, code, raw)
			return addResp{}, false
		}
		msg := teos.AppointmentReceiptBytes(req["signature"].(string), resp.StartBlock)
		if resp.Locator != a.Locator.String() || !wtcrypto.VerifySignature(msg, resp.Signature, r.towerID) {
			r.t.Errorf("add_appointment %s: bad receipt %s", a.Locator, raw)
			return addResp{}, false
		}
		return resp, true
	}
	r.t.Errorf("add_appointment %s: no answer in 60 s", a.Locator)
	return addResp{}, false
}

// renewUntilAnswered renews u's subscription, retrying as addUntilAnswered does. Every try
// that may have reached the tower is counted in u.renewTries.
func (r *chaosRun) renewUntilAnswered(u *chaosUser) (registerResp, bool) {
	body, _ := json.Marshal(u.registerRequest())
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		u.renewTries++
		r.mu.Unlock()
		code, raw, err := tryPost(r.url+"/register", body)
		if err != nil || code == http.StatusServiceUnavailable {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var resp registerResp
		if code != http.StatusOK || json.Unmarshal(raw, &resp) != nil {
			r.t.Errorf("register %s: %d %s", u.id, code, raw)
			return registerResp{}, false
		}
		rec := teos.RegistrationReceipt{UserID: u.id, AvailableSlots: resp.AvailableSlots,
			SubscriptionStart: resp.SubscriptionStart, SubscriptionExpiry: resp.SubscriptionExpiry}
		if !wtcrypto.VerifySignature(rec.SignedBytes(), resp.SubscriptionSignature, r.towerID) {
			r.t.Errorf("register %s: bad receipt %s", u.id, raw)
			return registerResp{}, false
		}
		return resp, true
	}
	r.t.Errorf("register %s: no answer in 60 s", u.id)
	return registerResp{}, false
}

func tryPost(url string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// mine mines a block every chaosBlockGap straight on btcd (not through the proxy), with an
// armed dispute in about one block out of three.
func (r *chaosRun) mine(stop <-chan struct{}) {
	ctx := context.Background()
	for {
		select {
		case <-stop:
			return
		case <-time.After(chaosBlockGap):
		}
		if rand.IntN(3) == 0 {
			select {
			case ab := <-r.armed:
				if _, err := r.c.btc.SendRawTransaction(ctx, ab.breach.Commitment); err != nil {
					r.t.Errorf("broadcast dispute: %v", err)
					return
				}
				r.mu.Lock()
				ab.mined = true // in the block generated next: btcd mines its whole mempool
				r.mined = append(r.mined, ab)
				r.mu.Unlock()
			default:
			}
		}
		if _, err := r.c.rpc.Generate(1); err != nil {
			r.t.Errorf("generate: %v", err)
			return
		}
		r.mu.Lock()
		r.blocks++
		r.mu.Unlock()
	}
}

// txState says whether btcd knows txid (mempool or chain) and the height it confirmed at (0
// if unconfirmed).
func (c *chain) txState(t testing.TB, txid chainhash.Hash) (uint32, bool) {
	t.Helper()
	tx, err := c.rpc.GetRawTransactionVerbose(&txid)
	if err != nil {
		return 0, false
	}
	if tx.BlockHash == "" {
		return 0, true
	}
	hash, err := chainhash.NewHashFromStr(tx.BlockHash)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := c.rpc.GetBlockHeaderVerbose(hash)
	if err != nil {
		t.Fatalf("getblockheader %s: %v", hash, err)
	}
	return uint32(hdr.Height), true
}

// expectGone says whether a held appointment must be gone (its tracker completed), may be
// gone, or must be there, at tip.
func (h *heldAppt) expectGone(tip uint32) (must, may bool) {
	if h.breach == nil || h.breach.penaltyHeight == 0 {
		return false, false
	}
	age := tip - h.breach.penaltyHeight
	return age >= teos.IrrevocablyResolved+chaosMargin, age+chaosMargin >= teos.IrrevocablyResolved
}

// check compares what teosd answers for u with what u's receipts imply, and drops from u.held
// the appointments found completed (so checkStore sees the same set); it returns how many
// subscriptions u holds (1 + renewals, read from the expiry) and how many it dropped.
func (u *chaosUser) check(t *testing.T, tw *tower, tip, subscriptionSlots uint32) (uint32, int) {
	t.Helper()
	sub := u.subscriptionOK(t, tw)
	span := sub.SubscriptionExpiry - u.start
	n := span / u.duration
	if span%u.duration != 0 || int(n) < 1+u.renewed || int(n) > 1+u.renewTries {
		t.Errorf("user %s: expiry %d is %d/%d subscriptions; %d renewals acknowledged, %d sent",
			u.id, sub.SubscriptionExpiry, span, u.duration, u.renewed, u.renewTries)
	}
	granted := n * subscriptionSlots
	used := uint32(0)
	completed := 0
	for loc, h := range u.held {
		mustGone, mayGone := h.expectGone(tip)
		code, got := u.get(t, tw, loc)
		gone := code == http.StatusNotFound && got["error_code"] == float64(teos.ErrCodeAppointmentNotFound)
		switch {
		case gone && mayGone:
			delete(u.held, loc)
			completed++
			continue
		case gone:
			t.Errorf("user %s: acknowledged appointment %s is gone", u.id, loc)
			continue
		case mustGone:
			t.Errorf("user %s: appointment %s still there %d blocks after its penalty confirmed: %d %v",
				u.id, loc, tip-h.breach.penaltyHeight, code, got)
		case code != http.StatusOK:
			t.Errorf("user %s: get_appointment %s: %d %v", u.id, loc, code, got)
			continue
		}
		used += teos.Slots(len(h.appt.EncryptedBlob))
		if h.breach != nil && h.breach.mined {
			u.wantResponded(t, tw, h.breach.breach)
			continue
		}
		appt, _ := got["appointment"].(map[string]any)
		if got["status"] != "being_watched" || appt == nil || appt["encrypted_blob"] != hex.EncodeToString(h.appt.EncryptedBlob) {
			t.Errorf("user %s: appointment %s: %v, want being_watched with the last blob sent", u.id, loc, got)
		}
	}
	locs := make([]teos.Locator, 0, len(u.held))
	for loc := range u.held {
		locs = append(locs, loc)
	}
	u.wantSubscription(t, tw, granted-used, locs...)
	if completed == 0 && u.slots != granted-used {
		t.Errorf("user %s: last receipt said %d slots, tower has %d", u.id, u.slots, granted-used)
	}
	return n, completed
}

// checkStore opens teosd's bbolt file (teosd stopped) and checks bbolt's own consistency and
// the store's invariants, key layouts as documented in internal/store/store.go.
// granted gives the slots of the users that renewed; any other user registered once.
func checkStore(t *testing.T, path string, tip, subscriptionSlots uint32, granted map[teos.UserID]uint32, clients []*chaosUser) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		bkt := func(name string) *bolt.Bucket {
			b := tx.Bucket([]byte(name))
			if b == nil {
				t.Fatalf("bucket %s missing", name)
			}
			return b
		}
		type apptHead struct {
			loc     teos.Locator
			user    teos.UserID
			blobLen int
		}
		appts := map[teos.UUID]apptHead{}
		_ = bkt("appointments").ForEach(func(k, v []byte) error {
			const head = 1 + teos.LocatorLen + teos.UserIDLen
			if len(k) != teos.UUIDLen || len(v) < head+1 || v[0] != 1 {
				t.Errorf("appointment record %x: %x", k, v)
				return nil
			}
			var h apptHead
			copy(h.loc[:], v[1:])
			copy(h.user[:], v[1+teos.LocatorLen:])
			n, size := binary.Uvarint(v[head:])
			if size <= 0 {
				t.Errorf("appointment %x: bad blob length", k)
			}
			h.blobLen = int(n)
			id := teos.UUID(k)
			if teos.NewUUID(h.loc, h.user) != id {
				t.Errorf("appointment %x is not stored under its UUID", k)
			}
			appts[id] = h
			return nil
		})
		users := map[teos.UserID]uint32{} // available slots
		expiries := map[teos.UserID]uint32{}
		_ = bkt("users").ForEach(func(k, v []byte) error {
			if len(k) != teos.UserIDLen || len(v) != 13 || v[0] != 1 {
				t.Errorf("user record %x: %x", k, v)
				return nil
			}
			users[teos.UserID(k)] = binary.BigEndian.Uint32(v[1:])
			expiries[teos.UserID(k)] = binary.BigEndian.Uint32(v[9:])
			return nil
		})
		// Each index holds exactly one entry per appointment, pointing back at it.
		for _, idx := range []struct {
			name   string
			prefix func(apptHead) []byte
		}{
			{"locator_idx", func(h apptHead) []byte { return h.loc[:] }},
			{"user_appts", func(h apptHead) []byte { return h.user[:] }},
		} {
			seen := map[teos.UUID]bool{}
			_ = bkt(idx.name).ForEach(func(k, _ []byte) error {
				if len(k) < teos.UUIDLen {
					t.Errorf("%s key %x too short", idx.name, k)
					return nil
				}
				id := teos.UUID(k[len(k)-teos.UUIDLen:])
				h, ok := appts[id]
				if !ok || !bytes.Equal(k[:len(k)-teos.UUIDLen], idx.prefix(h)) {
					t.Errorf("%s entry %x has no matching appointment", idx.name, k)
				}
				seen[id] = true
				return nil
			})
			if len(seen) != len(appts) {
				t.Errorf("%s indexes %d appointments of %d", idx.name, len(seen), len(appts))
			}
		}
		tracked := map[teos.UUID]bool{}
		_ = bkt("trackers").ForEach(func(k, _ []byte) error {
			if _, ok := appts[teos.UUID(k)]; !ok {
				t.Errorf("tracker %x without its appointment", k)
			}
			tracked[teos.UUID(k)] = true
			return nil
		})
		// Every queued hand-over has its appointment and a record that decodes: v1 || block
		// hash || uvarint length || dispute. Every mined dispute was answered by now, so one
		// still queued can only be for an appointment that already has its tracker.
		_ = bkt("handovers").ForEach(func(k, v []byte) error {
			if _, ok := appts[teos.UUID(k)]; len(k) != teos.UUIDLen || !ok {
				t.Errorf("queued hand-over %x without its appointment", k)
			} else if !tracked[teos.UUID(k)] {
				t.Errorf("queued hand-over %x never handed over: its appointment has no tracker", k)
			}
			head := 1 + chainhash.HashSize
			if len(v) <= head || v[0] != 1 {
				t.Errorf("hand-over record %x: %x", k, v)
				return nil
			}
			n, size := binary.Uvarint(v[head:])
			if size <= 0 || n == 0 || uint64(len(v)-head-size) != n {
				t.Errorf("hand-over %x: dispute length %d in a %d-byte record", k, n, len(v))
			}
			return nil
		})
		nExpiry := 0
		_ = bkt("user_expiry").ForEach(func(k, _ []byte) error {
			nExpiry++
			if len(k) != 4+teos.UserIDLen || expiries[teos.UserID(k[4:])] != binary.BigEndian.Uint32(k) {
				t.Errorf("user_expiry entry %x matches no user", k)
			}
			return nil
		})
		if nExpiry != len(users) {
			t.Errorf("%d user_expiry entries for %d users", nExpiry, len(users))
		}
		// Slots: available + held = granted, per user.
		used := map[teos.UserID]uint32{}
		for _, h := range appts {
			if _, ok := users[h.user]; !ok {
				t.Errorf("appointment of unknown user %s", h.user)
			}
			used[h.user] += teos.Slots(h.blobLen)
		}
		for id, avail := range users {
			want, ok := granted[id]
			if !ok {
				want = subscriptionSlots
			}
			if avail+used[id] != want {
				t.Errorf("user %s: %d available + %d held != %d granted", id, avail, used[id], want)
			}
		}
		// And the file holds exactly what the clients were acknowledged (minus completions).
		want := 0
		for _, u := range clients {
			for loc := range u.held {
				want++
				if _, ok := appts[teos.NewUUID(loc, u.id)]; !ok {
					t.Errorf("user %s: acknowledged appointment %s not in the file", u.id, loc)
				}
			}
		}
		if len(appts) != want {
			t.Errorf("the file holds %d appointments, the clients hold %d", len(appts), want)
		}
		last := bkt("meta").Get([]byte("last_block"))
		if len(last) != chainhash.HashSize+4 || binary.BigEndian.Uint32(last[chainhash.HashSize:]) != tip {
			t.Errorf("last_block %x, want height %d", last, tip)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
