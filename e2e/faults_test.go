package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// faultFor is how long each fault of the hold tests lasts: well inside the default hold
// bound (api_hold_timeout 45 s), as a bitcoind restart or a disk cleaned up by an operator.
const faultFor = 20 * time.Second

// mountTmpfs puts dir on a tmpfs of size bytes (the files already in it are copied over) and
// unmounts it at the end, also on failure. It skips the test if tmpfs cannot be mounted.
func mountTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	if err := tryMountTmpfs(t, dir, size); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root and CAP_SYS_ADMIN): %v", err)
	}
}

// tryMountTmpfs is mountTmpfs returning the mount's error instead of skipping.
func tryMountTmpfs(t *testing.T, dir string, size int) error {
	t.Helper()
	saved := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if saved[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		return err
	}
	t.Cleanup(func() {
		// Runs after the tower's own cleanup (registered later, run earlier) killed teosd.
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	for name, b := range saved {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return nil
}

// fillDisk fills the file system of dir with one file and returns a function that deletes it.
func fillDisk(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "fill")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	f.Close()
	freed := false
	free = func() {
		if !freed {
			freed = true
			if err := os.Remove(path); err != nil {
				t.Errorf("free the disk: %v", err)
			}
		}
	}
	t.Cleanup(free)
	return free
}

// sent is one appointment a plugin-like client sent during a fault.
type sent struct {
	appt    teos.Appointment
	verdict pluginVerdict
	took    time.Duration
	at      time.Time // answer time
}

// sendDuring sends an appointment every gap for d, each on its own goroutine as a plugin with
// many channels would, and returns a function that waits for every verdict.
func sendDuring(ctx context.Context, t *testing.T, tw *tower, u *user, d, gap time.Duration, blobLen int) func() []sent {
	t.Helper()
	var (
		mu  sync.Mutex
		out []sent
		wg  sync.WaitGroup
	)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(gap) {
		a := randomAppointment(t, blobLen)
		wg.Go(func() {
			v, took := pluginSend(ctx, tw.apiURL, tw.id, u, a)
			mu.Lock()
			out = append(out, sent{appt: a, verdict: v, took: took, at: time.Now()})
			mu.Unlock()
		})
	}
	return func() []sent {
		wg.Wait()
		return out
	}
}

// checkAllAccepted fails unless the plugin would have accepted every appointment and the
// tower holds each one; it returns how many answers came after released and the first of them.
func checkAllAccepted(t *testing.T, tw *tower, u *user, all []sent, released time.Time) (held int, first time.Duration) {
	t.Helper()
	verdicts := map[pluginVerdict]int{}
	first = time.Duration(math.MaxInt64)
	for _, s := range all {
		verdicts[s.verdict]++
		if s.verdict != verdictAccepted {
			continue
		}
		if s.at.After(released) {
			held++
			first = min(first, s.at.Sub(released))
		}
		code, got := u.get(t, tw, s.appt.Locator)
		if code != http.StatusOK || got["status"] != "being_watched" {
			t.Errorf("acknowledged appointment %s: %d %v", s.appt.Locator, code, got)
		}
	}
	if verdicts[verdictAccepted] != len(all) {
		t.Errorf("plugin verdicts %v, want all %d accepted", verdicts, len(all))
	}
	return held, first
}

// holdReport logs the hold metrics of one condition: requests held, served, and their waits.
func holdReport(t *testing.T, metricsURL, condition string) (served float64) {
	t.Helper()
	m := scrapeMetrics(t, metricsURL)
	for _, outcome := range []string{"served", "timeout", "gone", "full"} {
		series := fmt.Sprintf(`{condition=%q,outcome=%q}`, condition, outcome)
		n := m.lookup("teos_api_held_requests_total" + series)
		if n == 0 {
			continue
		}
		sum := m.lookup("teos_api_hold_seconds_sum" + series)
		t.Logf("held on %s, %s: %v requests, mean wait %.2f s", condition, outcome, n, sum/n)
	}
	if held := m.value(t, "teos_api_held_requests"); held != 0 {
		t.Errorf("teos_api_held_requests = %v after the fault, want 0", held)
	}
	return m.lookup(fmt.Sprintf(`teos_api_held_requests_total{condition=%q,outcome="served"}`, condition))
}

func waitSorted(all []sent) []time.Duration {
	var d []time.Duration
	for _, s := range all {
		d = append(d, s.took)
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d
}

// TestHeldThroughBitcoindOutage: bitcoind is unreachable for 20 s while a plugin-like client
// keeps sending appointments (one of them for a breach mined during the outage), renews its
// subscription and asks for it. With the default hold, every request is answered once
// bitcoind is back: the plugin accepts every appointment (none invalid or dropped), each is
// stored, and the breach is answered.
func TestHeldThroughBitcoindOutage(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	proxy := startProxy(t, node.RPCHost)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	tw.args = append(tw.args, "--btcrpcport", proxy.port())
	tw.start()
	alice := newUser(t)
	reg := alice.register(t, tw)
	b := node.NewBreach(t)

	proxy.down()
	waitFor(t, "teos_bitcoind_reachable 0", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_bitcoind_reachable") == 0
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	breachDone := make(chan pluginVerdict, 1)
	go func() {
		v, _ := pluginSend(ctx, tw.apiURL, tw.id, alice, breachAppointment(t, b))
		breachDone <- v
	}()
	others := make(chan string, 2)
	go func() {
		code, raw := post(t, tw.apiURL, "/register", alice.registerRequest(), nil)
		others <- fmt.Sprintf("register %d %s", code, raw)
	}()
	go func() {
		code, _, raw := alice.subscription(t, tw)
		others <- fmt.Sprintf("get_subscription_info %d %s", code, raw)
	}()
	c.send(t, b.Commitment) // straight to btcd: the tower cannot see it yet
	c.mine(t)
	wait := sendDuring(ctx, t, tw, alice, faultFor, 500*time.Millisecond, 200)
	proxy.up(t)
	released := time.Now()
	all := wait()

	if v := <-breachDone; v != verdictAccepted {
		t.Errorf("breach appointment: %s", v)
	}
	for range 2 {
		if r := <-others; !contains200(r) {
			t.Errorf("held request not served: %s", r)
		}
	}
	held, first := checkAllAccepted(t, tw, alice, all, released)
	alice.waitResponded(t, tw, b)
	_, sub, _ := alice.subscription(t, tw)
	if sub.SubscriptionExpiry <= reg.SubscriptionExpiry {
		t.Errorf("renewal during the outage not applied: expiry %d, was %d", sub.SubscriptionExpiry, reg.SubscriptionExpiry)
	}
	waits := waitSorted(all)
	t.Logf("bitcoind outage %v: %d appointments sent, %d answered after it ended, first answer %v after the link came back; longest wait %v",
		faultFor, len(all), held, first.Round(time.Millisecond), waits[len(waits)-1].Round(time.Millisecond))
	if served := holdReport(t, metricsURL, "bitcoind"); served < float64(len(all)) {
		t.Errorf("%v requests held on bitcoind and served, want at least %d", served, len(all))
	}
	tw.stop()
}

func contains200(s string) bool {
	var name string
	var code int
	_, err := fmt.Sscanf(s, "%s %d", &name, &code)
	return err == nil && code == http.StatusOK
}

// TestHeldThroughDiskFull: the tower's disk is full for 20 s (its data dir on a small tmpfs,
// filled by a file then freed) while a plugin-like client keeps sending appointments and
// blocks are mined. Writes are held, not answered 400/255: the plugin accepts every
// appointment, each is stored, and the tower follows the chain afterwards.
func TestHeldThroughDiskFull(t *testing.T) {
	node := startNode(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	mountTmpfs(t, tw.dataDir, 16<<20)
	tw.start()
	alice := newUser(t)
	reg := alice.register(t, tw)

	free := fillDisk(t, tw.dataDir)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	renewed := make(chan string, 1)
	go func() {
		code, raw := post(t, tw.apiURL, "/register", alice.registerRequest(), nil)
		renewed <- fmt.Sprintf("register %d %s", code, raw)
	}()
	mined := make(chan struct{})
	go func() {
		defer close(mined)
		for range 4 {
			node.Generate(t, 1)
			time.Sleep(faultFor / 5)
		}
	}()
	wait := sendDuring(ctx, t, tw, alice, faultFor, 500*time.Millisecond, 900) // the largest that fits the 2 KiB body limit
	<-mined
	free()
	released := time.Now()
	all := wait()
	if r := <-renewed; !contains200(r) {
		t.Errorf("renewal held through the full disk not served: %s", r)
	}

	held, first := checkAllAccepted(t, tw, alice, all, released)
	_, sub, _ := alice.subscription(t, tw)
	if len(sub.Locators) != len(all) || sub.SubscriptionExpiry <= reg.SubscriptionExpiry {
		t.Errorf("subscription after the fault: %d locators (want %d), expiry %d (was %d)",
			len(sub.Locators), len(all), sub.SubscriptionExpiry, reg.SubscriptionExpiry)
	}
	_, tip := newChain(t, node).mine(t)
	waitTowerAt(t, tw, tip)
	waits := waitSorted(all)
	t.Logf("disk full %v: %d appointments sent, %d answered after it was freed, first answer %v after; longest wait %v",
		faultFor, len(all), held, first.Round(time.Millisecond), waits[len(waits)-1].Round(time.Millisecond))
	if served := holdReport(t, metricsURL, "store"); served == 0 || held == 0 {
		t.Errorf("nothing was held on the full disk (served %v, answered after %d): the fault did not bite", served, held)
	}
	tw.stop()
}

// TestHoldBoundExceeded: a fault that outlasts the hold bound (2 s here) is answered 503 / 32,
// never 400/255, on every endpoint that waits on it; and nothing of a refused request is
// written.
func TestHoldBoundExceeded(t *testing.T) {
	node := startNode(t)
	proxy := startProxy(t, node.RPCHost)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	mountTmpfs(t, tw.dataDir, 16<<20)
	tw.args = append(tw.args, "--btcrpcport", proxy.port(), "--apiholdtimeout", "2")
	tw.start()
	alice := newUser(t)
	alice.register(t, tw)
	refused := randomAppointment(t, 100)
	loc := refused.Locator
	// A batch too large for the pages a full disk may still have free (bbolt reuses freed
	// pages, so a small write can still go through).
	var batch []any
	var batchLocs []teos.Locator
	for range 50 {
		a := randomAppointment(t, 900)
		batch = append(batch, alice.addRequest(a))
		batchLocs = append(batchLocs, a.Locator)
	}
	requests := map[string]any{
		"/register":              alice.registerRequest(),
		"/add_appointment":       alice.addRequest(refused),
		"/add_appointments":      map[string]any{"appointments": batch},
		"/get_appointment":       map[string]string{"locator": loc.String(), "signature": wtcrypto.SignMessage(teos.GetAppointmentMessage(loc), alice.key)},
		"/get_subscription_info": map[string]string{"signature": wtcrypto.SignMessage(teos.GetSubscriptionInfoMessage, alice.key)},
	}
	expectUnavailable := func(fault string, paths ...string) {
		t.Helper()
		var wg sync.WaitGroup
		for _, path := range paths {
			wg.Go(func() {
				start := time.Now()
				if !unavailable(t, tw, path, requests[path]) {
					t.Errorf("%s: %s did not answer 503 / 32", fault, path)
				}
				if took := time.Since(start); took < 2*time.Second {
					t.Errorf("%s: %s answered after %v, before the bound: not held", fault, path, took)
				}
			})
		}
		wg.Wait()
	}

	proxy.down()
	waitFor(t, "teos_bitcoind_reachable 0", func() bool {
		return scrapeMetrics(t, "http://"+metricsAddr+"/metrics").value(t, "teos_bitcoind_reachable") == 0
	})
	expectUnavailable("bitcoind outage", "/register", "/add_appointment", "/add_appointments", "/get_appointment", "/get_subscription_info")
	proxy.up(t)
	waitFor(t, "the tower serving again", func() bool {
		code, _, _ := alice.subscription(t, tw)
		return code == http.StatusOK
	})

	free := fillDisk(t, tw.dataDir)
	expectUnavailable("disk full", "/add_appointments")
	if code, _, raw := alice.subscription(t, tw); code != http.StatusOK { // reads do not wait on the disk
		t.Errorf("get_subscription_info with a full disk: %d %s", code, raw)
	}
	free()
	for _, l := range append(batchLocs, loc) {
		if code, got := alice.get(t, tw, l); code != http.StatusNotFound {
			t.Errorf("refused appointment %s: get_appointment %d %v, want 404 (nothing written)", l, code, got)
		}
	}
	alice.add(t, tw, randomAppointment(t, 100)) // and writes work again
	tw.stop()
}

// TestHoldFloodBounded: during an outage, held requests are bounded (three quarters of
// api_max_connections, 6 of 8 here); past that, a request is answered 503 / 32 at once, /ping
// still answers, and the held ones are served when bitcoind is back.
func TestHoldFloodBounded(t *testing.T) {
	node := startNode(t)
	proxy := startProxy(t, node.RPCHost)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	tw.args = append(tw.args, "--btcrpcport", proxy.port(), "--apimaxconnections", "8")
	tw.start()
	alice := newUser(t)
	alice.register(t, tw)

	fillHoldThenRefuse(t, tw, proxy, metricsURL, alice)
	m := scrapeMetrics(t, metricsURL)
	if full := m.lookup(`teos_api_held_requests_total{condition="bitcoind",outcome="full"}`); full != 1 {
		t.Errorf("refused for a full hold: %v, want 1", full)
	}
	tw.stop()
}

// TestNoHoldBaseline is the behaviour the hold replaces, kept as api_hold_timeout 0 (rust-teos
// answers at once): during an outage and with a full disk, add_appointment is answered 503 / 32
// (never 400/255) without waiting, which the CLN plugin files as invalid. It logs how many
// appointments the plugin would have lost, the baseline for the hold tests above.
func TestNoHoldBaseline(t *testing.T) {
	node := startNode(t)
	proxy := startProxy(t, node.RPCHost)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	mountTmpfs(t, tw.dataDir, 16<<20)
	tw.args = append(tw.args, "--btcrpcport", proxy.port(), "--apiholdtimeout", "0")
	tw.start()
	alice := newUser(t)
	alice.register(t, tw)
	ctx := t.Context()
	const n = 10
	count := func(fault string) {
		t.Helper()
		verdicts := map[pluginVerdict]int{}
		for range n {
			start := time.Now()
			v, _ := pluginSend(ctx, tw.apiURL, tw.id, alice, randomAppointment(t, 900))
			verdicts[v]++
			if v != verdictAccepted && v != verdictInvalid {
				t.Errorf("%s: verdict %s", fault, v)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("%s: answered after %v with no hold", fault, took)
			}
		}
		t.Logf("no hold, %s: plugin verdicts for %d appointments: %v", fault, n, verdicts)
		if verdicts[verdictInvalid] == 0 {
			t.Errorf("%s: the fault did not bite", fault)
		}
	}
	proxy.down()
	waitFor(t, "teos_bitcoind_reachable 0", func() bool {
		return scrapeMetrics(t, "http://"+metricsAddr+"/metrics").value(t, "teos_bitcoind_reachable") == 0
	})
	count("bitcoind outage")
	proxy.up(t)
	waitFor(t, "the tower serving again", func() bool {
		code, _, _ := alice.subscription(t, tw)
		return code == http.StatusOK
	})
	free := fillDisk(t, tw.dataDir)
	count("disk full")
	free()
	tw.stop()
}

// fillHoldThenRefuse cuts bitcoind off, holds 6 adds (the bound for 8 connections), checks that
// the next one is answered 503 / 32 at once and /ping still answers, then brings bitcoind back
// and checks the held ones are accepted.
func fillHoldThenRefuse(t *testing.T, tw *tower, proxy *linkProxy, metricsURL string, alice *user) {
	t.Helper()
	proxy.down()
	waitFor(t, "teos_bitcoind_reachable 0", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_bitcoind_reachable") == 0
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const bound = 6
	verdicts := make(chan pluginVerdict, bound)
	for range bound {
		go func() {
			v, _ := pluginSend(ctx, tw.apiURL, tw.id, alice, randomAppointment(t, 100))
			verdicts <- v
		}()
	}
	waitFor(t, "6 requests held", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_api_held_requests") == bound
	})
	start := time.Now()
	if !unavailable(t, tw, "/add_appointment", alice.addRequest(randomAppointment(t, 100))) {
		t.Fatal("a request past the held bound was not answered 503 / 32")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("refused after %v: held instead of refused at once", took)
	}
	if code := ping(t, tw); code != http.StatusOK {
		t.Errorf("/ping %d with the held bound reached", code)
	}
	proxy.up(t)
	for range bound {
		if v := <-verdicts; v != verdictAccepted {
			t.Errorf("held request: %s", v)
		}
	}
}
