package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/teos-go/teos/internal/api/addbatch"
	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// flakyStore is a real store whose calls fail now and then before reaching it, as a database
// whose connections drop or a disk that fills and frees: the tower's own passing faults.
type flakyStore struct {
	*store.Store
	mu     sync.Mutex
	rng    *rand.Rand
	p      float64
	faults atomic.Int64
}

var errFlaky = fmt.Errorf("flaky store: %w", syscall.EIO)

func (f *flakyStore) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() < f.p {
		f.faults.Add(1)
		return errFlaky
	}
	return nil
}

func (f *flakyStore) User(id teos.UserID) (store.UserInfo, bool, error) {
	if err := f.fail(); err != nil {
		return store.UserInfo{}, false, err
	}
	return f.Store.User(id)
}

func (f *flakyStore) UpdateUser(id teos.UserID, fn func(store.UserInfo, bool) (store.UserInfo, error)) (store.UserInfo, error) {
	if err := f.fail(); err != nil {
		return store.UserInfo{}, err
	}
	return f.Store.UpdateUser(id, fn)
}

func (f *flakyStore) UpsertAppointments(items []store.AppointmentUpsert) ([]store.UpsertResult, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.UpsertAppointments(items)
}

func (f *flakyStore) Appointment(id teos.UUID) (*store.Appointment, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Appointment(id)
}

func (f *flakyStore) Tracker(id teos.UUID) (*store.Tracker, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Tracker(id)
}

func (f *flakyStore) UserLocators(id teos.UserID) ([]teos.Locator, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.UserLocators(id)
}

func (f *flakyStore) DeleteUserAppointment(user teos.UserID, id teos.UUID, policy func(store.UserInfo) error) (store.UserInfo, error) {
	if err := f.fail(); err != nil {
		return store.UserInfo{}, err
	}
	return f.Store.DeleteUserAppointment(user, id, policy)
}

// faultEngine is what the fault workloads need of a store engine: the core's store, and the
// reads that check the outcome.
type faultEngine interface {
	watcher.Store
	gatekeeper.Store
	User(id teos.UserID) (store.UserInfo, bool, error)
}

// heldStack serves the public API over real HTTP and gRPC on loopback as teosd wires it: the
// hold (both conditions) and the add coalescer. It returns the client side, the hold and the
// count of requests held and then served.
func heldStack(t *testing.T, db faultEngine, slots uint32) (*stack, grpcapi.Hold, *atomic.Int64) {
	gk := gatekeeper.New(gatekeeper.Config{Store: db, SubscriptionSlots: slots, SubscriptionDuration: 1000, ExpiryDelta: 6}, testHeight)
	w := watcher.New(watcher.Config{Store: db, Gatekeeper: gk, Responder: acceptAll{}, TowerKey: privKey("tower")})
	served := new(atomic.Int64)
	gate := hold.New(hold.Config{Bound: 5 * time.Minute, OnRelease: func(_ string, _ time.Duration, outcome string) {
		if outcome == hold.OutcomeServed {
			served.Add(1)
		}
	}})
	held := grpcapi.Hold{Gate: gate,
		Bitcoind: hold.NewCondition("bitcoind", 0), Store: hold.NewCondition("store", time.Millisecond)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	public := grpcapi.NewPublic(w, held.Bitcoind.IsUp, nil)
	public.SetHold(held)
	teosv2.RegisterPublicTowerServicesServer(srv, public)
	teosv2.RegisterPublicTowerExtensionsServer(srv, grpcapi.NewExtensions(public))
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	conds := []*hold.Condition{held.Bitcoind, held.Store}
	co := addbatch.New(teosv2.NewPublicTowerServicesClient(conn), teosv2.NewPublicTowerExtensionsClient(conn), addbatch.Config{
		MaxItems: grpcapi.MaxBatchItems, InFlight: 2, NoHoldHeader: grpcapi.NoHoldHeader,
		Bypass: func() bool { return !conds[0].IsUp() || !conds[1].IsUp() },
	})
	for _, c := range conds {
		c.OnChange(func(up bool, _ error) {
			if !up {
				co.Flush()
			}
		})
	}
	ts := httptest.NewServer(httpapi.NewWithExtensions(co, teosv2.NewPublicTowerExtensionsClient(conn), nil))
	t.Cleanup(func() {
		ts.Close()
		held.Gate.Close()
		_ = conn.Close()
		srv.Stop()
	})
	return &stack{url: ts.URL, client: ts.Client()}, held, served
}

// told is what the tower told one user: the last answer's available slots, the blob of each
// appointment acknowledged and not deleted, and how many renewals it granted.
type told struct {
	slots    uint32
	blobs    map[teos.Locator][]byte
	renewals uint32
}

// faultWorkload has users clients work concurrently on every endpoint (register, adds,
// updates, batches, gets, subscription info, a renewal, and deletes if withDelete; some adds
// given up and sent again) while bitcoind's condition flaps, and reports any answer but 200.
func faultWorkload(t *testing.T, s *stack, held grpcapi.Hold, users, adds int, withDelete bool) []told {
	results := make([]told, users)
	stopFlap := make(chan struct{})
	flapped := make(chan struct{})
	go func() {
		defer close(flapped)
		for {
			select {
			case <-stopFlap:
				held.Bitcoind.Up()
				return
			case <-time.After(3 * time.Millisecond):
			}
			held.Bitcoind.Down(fmt.Errorf("flap"))
			time.Sleep(2 * time.Millisecond)
			held.Bitcoind.Up()
		}
	}()
	defer func() {
		close(stopFlap)
		<-flapped
	}()
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			usr := newUser(fmt.Sprint("flaky ", u))
			res := told{blobs: map[teos.Locator][]byte{}}
			defer func() { results[u] = res }()
			check := func(what string, st int, body string, err error) bool {
				if err != nil || st != http.StatusOK {
					t.Errorf("user %d %s: %d %s %v", u, what, st, body, err)
					return false
				}
				return true
			}
			if st, body, err := s.do(t.Context(), "/register", registerBody(usr.id.String())); !check("register", st, body, err) {
				return
			}
			for i := range adds {
				// Every fifth add updates the previous one, with a blob of another size.
				n := i
				if i%5 == 4 {
					n = i - 1
				}
				loc := teos.Locator{byte(u), byte(n)}
				blob := make([]byte, 1+(i%3)*300) // one slot each: the body limit keeps blobs under 2048 bytes
				a := teos.Appointment{Locator: loc, EncryptedBlob: blob, ToSelfDelay: 42}
				if i%4 == 1 { // a client that gives up, then sends it again
					ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i%3)*time.Millisecond)
					_, _, _ = s.do(ctx, "/add_appointment", addBody(a, usr.signAdd(a)))
					cancel()
				}
				st, body, err := s.do(t.Context(), "/add_appointment", addBody(a, usr.signAdd(a)))
				if !check(fmt.Sprintf("add %d", i), st, body, err) {
					return
				}
				var r struct {
					AvailableSlots uint32 `json:"available_slots"`
				}
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Error(err)
					return
				}
				res.slots, res.blobs[loc] = r.AvailableSlots, blob
				st, body, err = s.do(t.Context(), "/get_appointment", getBody(loc, usr.signGet(loc)))
				check(fmt.Sprintf("get %d", i), st, body, err)
				if withDelete && i%7 == 6 { // delete the add before: its slot comes back
					old := teos.Locator{byte(u), byte(i - 1)}
					if _, ok := res.blobs[old]; ok {
						st, body, err = s.do(t.Context(), "/delete_appointment", getBody(old, usr.sign(teos.DeleteAppointmentMessage(old))))
						if !check(fmt.Sprintf("delete %d", i-1), st, body, err) {
							return
						}
						if err := json.Unmarshal([]byte(body), &r); err != nil {
							t.Error(err)
							return
						}
						res.slots = r.AvailableSlots
						delete(res.blobs, old)
					}
				}
				if i%8 == 0 { // a batch of three new ones
					var items []string
					for k := range 3 {
						bl := teos.Locator{byte(u), byte(100 + i), byte(k)}
						ba := teos.Appointment{Locator: bl, EncryptedBlob: []byte{byte(k)}, ToSelfDelay: 42}
						items = append(items, addBody(ba, usr.signAdd(ba)))
						res.blobs[bl] = ba.EncryptedBlob
					}
					st, body, err = s.do(t.Context(), "/add_appointments", `{"appointments":[`+strings.Join(items, ",")+`]}`)
					if !check(fmt.Sprintf("batch %d", i), st, body, err) {
						return
					}
					var br struct {
						Results []struct {
							AvailableSlots *uint32 `json:"available_slots"`
						} `json:"results"`
					}
					if err := json.Unmarshal([]byte(body), &br); err != nil || len(br.Results) != 3 {
						t.Errorf("user %d batch %d: %s %v", u, i, body, err)
						return
					}
					for k, it := range br.Results {
						if it.AvailableSlots == nil {
							t.Errorf("user %d batch %d item %d refused: %s", u, i, k, body)
							return
						}
						res.slots = *it.AvailableSlots
					}
				}
				if i == adds/2 { // a renewal
					st, body, err = s.do(t.Context(), "/register", registerBody(usr.id.String()))
					if !check("renewal", st, body, err) {
						return
					}
					var rr struct {
						AvailableSlots uint32 `json:"available_slots"`
					}
					if err := json.Unmarshal([]byte(body), &rr); err != nil {
						t.Error(err)
						return
					}
					res.slots, res.renewals = rr.AvailableSlots, res.renewals+1
				}
				if i%10 == 0 {
					st, body, err = s.do(t.Context(), "/get_subscription_info", infoBody(usr.signInfo()))
					check(fmt.Sprintf("info %d", i), st, body, err)
				}
			}
		})
	}
	wg.Wait()
	return results
}

// checkTold checks the store holds what the users were told: every appointment acknowledged
// and not deleted, with its last acknowledged blob, no other, and the slots of the last answer,
// which with the slots used make whole subscriptions of slots, at least one per registration
// told (a renewal whose commit outcome was unknown may have been run again).
func checkTold(t *testing.T, db faultEngine, results []told, slots uint32) {
	for u, res := range results {
		usr := newUser(fmt.Sprint("flaky ", u))
		info, ok, err := db.User(usr.id)
		if err != nil || !ok {
			t.Fatalf("user %d: %v %v", u, ok, err)
		}
		used := uint32(0)
		for loc, blob := range res.blobs {
			a, err := db.Appointment(teos.NewUUID(loc, usr.id))
			if err != nil {
				t.Errorf("user %d: acknowledged appointment %s not stored: %v", u, loc, err)
				continue
			}
			if string(a.EncryptedBlob) != string(blob) {
				t.Errorf("user %d: appointment %s holds another blob than the last acknowledged", u, loc)
			}
			used += teos.Slots(len(blob))
		}
		if res.slots != info.AvailableSlots {
			t.Errorf("user %d: %d slots stored, %d told", u, info.AvailableSlots, res.slots)
		}
		if granted := info.AvailableSlots + used; granted%slots != 0 || granted < slots*(1+res.renewals) {
			t.Errorf("user %d: %d slots stored and %d used: not whole subscriptions of %d, at least %d", u,
				info.AvailableSlots, used, slots, 1+res.renewals)
		}
		locs, err := db.UserLocators(usr.id)
		if err != nil || len(locs) != len(res.blobs) {
			t.Errorf("user %d: %d appointments stored, %d acknowledged and not deleted (%v)", u, len(locs), len(res.blobs), err)
		}
	}
}

// Under passing store faults on every call, bitcoind flapping and clients that give up and
// send again, concurrent clients on every endpoint (adds coalesced by the HTTP edge as in
// teosd) get only their right answers, never an error, and what they were told is what the
// store holds: every receipt's appointment, and the slots.
func TestPassingStoreFaultsNeverAnswered(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	flaky := &flakyStore{Store: db, rng: rand.New(rand.NewPCG(1, 2))}
	const slots = 1000
	s, held, _ := heldStack(t, flaky, slots)
	flaky.mu.Lock()
	flaky.p = 0.3
	flaky.mu.Unlock()
	results := faultWorkload(t, s, held, 8, 40, true)
	flaky.mu.Lock()
	flaky.p = 0
	flaky.mu.Unlock()
	t.Logf("%d store calls failed", flaky.faults.Load())
	if flaky.faults.Load() == 0 {
		t.Fatal("no fault injected")
	}
	checkTold(t, db, results, slots)
}

// killProxy forwards TCP connections to a server and closes them all on kill, as a failover
// or a network blip does to a database's connections.
type killProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	kills atomic.Int64
}

func startKillProxy(t *testing.T, target string) *killProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &killProxy{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		p.kill()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, srv)
			p.mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(srv, c); _ = srv.Close() })
			wg.Go(func() { _, _ = io.Copy(c, srv); _ = c.Close() })
		}
	})
	return p
}

func (p *killProxy) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	if len(p.conns) > 0 {
		p.kills.Add(1)
	}
	p.conns = nil
}

// The same on PostgreSQL, whose connections are all cut several times a second: requests in
// flight on them fail (a COMMIT among them may or may not have committed) and are held and
// run again on new connections. The engine does not serve delete_appointment.
func TestSharedConnectionsCutNeverAnswered(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := pg.NewDatabase(t)
	proxy := startKillProxy(t, fmt.Sprintf("127.0.0.1:%d", pg.Port()))
	url = strings.Replace(url, fmt.Sprintf("127.0.0.1:%d", pg.Port()), proxy.ln.Addr().String(), 1)
	db, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	const slots = 1000
	s, held, served := heldStack(t, db, slots)
	stop := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			proxy.kill()
		}
	}()
	results := faultWorkload(t, s, held, 4, 16, false)
	close(stop)
	<-killed
	t.Logf("connections cut %d times; %d requests held and served", proxy.kills.Load(), served.Load())
	checkTold(t, db, results, slots)
}
