package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// edgeClient is an HTTP client whose connections leave from local (a loopback address).
func edgeClient(local string, keepAlive bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 30 * time.Second}
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 64},
	}
}

// edgePost sends body as JSON with extra headers; it does not fail the test, so it can run
// on any goroutine.
func edgePost(c *http.Client, base, path string, body any, header http.Header) (int, []byte, error) {
	return edgePostCtx(context.Background(), c, base, path, body, header)
}

// edgePostCtx is edgePost with a context (e.g. one carrying an httptrace.ClientTrace).
func edgePostCtx(ctx context.Context, c *http.Client, base, path string, body any, header http.Header) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// TestRateLimitBurstIsDelayedNotRefused: with the rate limit on, a burst of 10x the rate
// from one client ends with every appointment accepted (as the CLN plugin judges it),
// receipted and stored; the excess waited instead of being refused, /ping kept answering at
// once, and the metrics counted the held requests.
func TestRateLimitBurstIsDelayedNotRefused(t *testing.T) {
	node := startNode(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tw := newTower(t, node, fmt.Sprintf("api_rate_limit = 4.0\napi_rate_burst = 4\nmetrics_bind = %q\n", metricsAddr))
	tw.start()
	alice := newUser(t)
	alice.register(t, tw)

	const n = 40 // 10x the rate, all at once
	client := edgeClient("127.0.0.1", true)
	appts := make([]teos.Appointment, n)
	reqs := make([]map[string]any, n)
	for i := range appts {
		appts[i] = randomAppointment(t, 100)
		reqs[i] = alice.addRequest(appts[i])
	}
	type answer struct {
		status int
		raw    []byte
		err    error
	}
	answers := make([]answer, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, raw, err := edgePost(client, tw.apiURL, "/add_appointment", reqs[i], nil)
			answers[i] = answer{status, raw, err}
		}()
	}
	// While the burst waits its turn, /ping (same address) answers at once.
	time.Sleep(200 * time.Millisecond)
	resp, err := client.Get(tw.apiURL + "/ping")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/ping during the burst: %v %v", resp, err)
	}
	resp.Body.Close()
	wg.Wait()
	t.Logf("%d appointments at 10x the rate limit (4/s, burst 4) served in %v", n, time.Since(start).Round(time.Millisecond))

	verdicts := map[pluginVerdict]int{}
	for i, a := range answers {
		v := pluginDecide(tw.id, reqs[i]["signature"].(string), a.raw, a.err)
		verdicts[v]++
		if v != verdictAccepted {
			t.Errorf("appointment %d: %s (%d %s %v)", i, v, a.status, a.raw, a.err)
			continue
		}
		var r addResp
		_ = json.Unmarshal(a.raw, &r)
		msg := teos.AppointmentReceiptBytes(reqs[i]["signature"].(string), r.StartBlock)
		if r.Locator != appts[i].Locator.String() || !wtcrypto.VerifySignature(msg, r.Signature, tw.id) {
			t.Errorf("appointment %d: receipt %s does not verify", i, a.raw)
		}
	}
	if verdicts[verdictAccepted] != n {
		t.Fatalf("CLN plugin verdicts %v, want all %d accepted", verdicts, n)
	}
	code, sub, raw := alice.subscription(t, tw)
	if code != http.StatusOK {
		t.Fatalf("get_subscription_info: %d %s", code, raw)
	}
	for _, a := range appts {
		if !slices.Contains(sub.Locators, a.Locator.String()) {
			t.Errorf("locator %s not stored", a.Locator)
		}
	}
	m := scrapeMetrics(t, "http://"+metricsAddr+"/metrics")
	held := m[`teos_http_request_held_seconds_count{endpoint="add_appointment"}`]
	// All but the burst wait, less one per token earned while the 40 arrive (a loaded
	// machine spreads them out); half is plenty to show they were delayed.
	if held < n/2 {
		t.Errorf("held add_appointment requests in the metrics: %v, want about %d", held, n-4)
	}
	if m[`teos_http_requests_total{code="200",endpoint="add_appointment"}`] != n {
		t.Errorf("metrics count %v add_appointment 200s, want %d", m[`teos_http_requests_total{code="200",endpoint="add_appointment"}`], n)
	}
	t.Logf("held: %v requests, %.1f s in all", held, m[`teos_http_request_held_seconds_sum{endpoint="add_appointment"}`])
	tw.stop()
}

// TestTrustedProxyClientAddress: behind a reverse proxy the operator trusts, each client is
// rate-limited on its own address (X-Forwarded-For), not on the proxy's; from an untrusted
// peer, forged X-Forwarded-For changes nothing.
func TestTrustedProxyClientAddress(t *testing.T) {
	node := startNode(t)
	// One token per 100 s: past the burst of 2 a request's turn is beyond the 45 s bound, so
	// it gets 503 / 32 at once and the test need not wait.
	tw := newTower(t, node, "api_rate_limit = 0.01\napi_rate_burst = 2\napi_trusted_proxies = [\"127.0.0.1\"]\n")
	tw.start("--debug")

	// The proxy listens on 127.0.0.1 and reaches the tower from 127.0.0.1 (trusted).
	target, _ := url.Parse(tw.apiURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	proxyURL := "http://" + ln.Addr().String()

	register := func(c *http.Client, base string, header http.Header) (int, []byte) {
		t.Helper()
		u := newUser(t)
		code, raw, err := edgePost(c, base, "/register", map[string]string{"user_id": u.id.String()}, header)
		if err != nil {
			t.Fatal(err)
		}
		return code, raw
	}
	const unavailable = `{"error":"Service currently unavailable","error_code":32}`
	carol := edgeClient("127.0.0.2", false) // behind the proxy
	dave := edgeClient("127.0.0.3", false)  // behind the proxy too
	for i := range 2 {
		if code, raw := register(carol, proxyURL, nil); code != http.StatusOK {
			t.Fatalf("carol's register %d via the proxy, within her burst: %d %s", i, code, raw)
		}
	}
	if code, raw := register(carol, proxyURL, nil); code != http.StatusServiceUnavailable || string(raw) != unavailable {
		t.Fatalf("carol past her burst: %d %s, want 503 %s", code, raw, unavailable)
	}
	// The proxy's address is not one bucket: dave, behind the same proxy, has his own.
	if code, raw := register(dave, proxyURL, nil); code != http.StatusOK {
		t.Fatalf("dave via the same proxy: %d %s (limited on the proxy's address?)", code, raw)
	}
	// Carol cannot forge her way out through the proxy either: it appends her real address.
	if code, _ := register(carol, proxyURL, http.Header{"X-Forwarded-For": {"198.51.100.7"}, "X-Real-Ip": {"198.51.100.8"}}); code != http.StatusServiceUnavailable {
		t.Fatalf("carol with a forged X-Forwarded-For via the proxy: %d, want 503", code)
	}

	// Erin talks to the tower directly from an untrusted address and forges the headers.
	erin := edgeClient("127.0.0.4", false)
	for i := range 2 {
		h := http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", 10+i)}, "X-Real-Ip": {fmt.Sprintf("198.51.100.%d", 20+i)}}
		if code, raw := register(erin, tw.apiURL, h); code != http.StatusOK {
			t.Fatalf("erin's register %d: %d %s", i, code, raw)
		}
	}
	h := http.Header{"X-Forwarded-For": {"198.51.100.99"}, "X-Real-Ip": {"198.51.100.98"}}
	if code, raw := register(erin, tw.apiURL, h); code != http.StatusServiceUnavailable {
		t.Fatalf("erin past her burst with yet another forged address: %d %s, want 503", code, raw)
	}
	// Forging carol's address does not spend dave's or carol's allowance: dave still has one.
	if code, raw := register(erin, tw.apiURL, http.Header{"X-Forwarded-For": {"127.0.0.3"}}); code != http.StatusServiceUnavailable {
		t.Fatalf("erin forging dave's address: %d %s", code, raw)
	}
	if code, raw := register(dave, proxyURL, nil); code != http.StatusOK {
		t.Fatalf("dave's second register: %d %s", code, raw)
	}

	// The logs name the real clients.
	logs := tw.logs()
	for _, want := range []string{"client=127.0.0.2", "client=127.0.0.3", "client=127.0.0.4"} {
		if !strings.Contains(logs, want) {
			t.Errorf("teosd's debug log lacks %q", want)
		}
	}
	for _, forged := range []string{"client=198.51.100."} {
		if strings.Contains(logs, forged) {
			t.Errorf("teosd's log shows a forged address %q", forged)
		}
	}
	tw.stop()
}

// TestOneAddressCannotTakeTheTowerOffline: an attacker on 127.0.0.2, in a process of its own,
// keeps opening idle connections (3,000 at a time, re-opening those the tower closes) while an honest client
// on 127.0.0.1 adds appointments, each on a new connection (no keep-alive). Every honest
// request is served, and the tower serves at most its per-address cap of the attacker's
// connections; by default it parks the rest (kept open, unread) instead of resetting them,
// so the attacker has little to re-open. The honest client's latency, idle and under
// attack, and the connection counts per second are logged (no threshold: the machine is
// shared). TEOS_EDGE_COMPARE=1 also runs the attack against the previous behaviour (reset
// at once past the cap), TEOS_EDGE_BASELINE=1 against the settings before the per-address
// cap (global cap 1024); TEOS_EDGE_REPEAT=n repeats the runs (alternating their order),
// TEOS_EDGE_REQUESTS=n sets the honest requests per measure (100; 20 for the baseline).
func TestOneAddressCannotTakeTheTowerOffline(t *testing.T) {
	node := startNode(t)
	runs := []edgeRun{{name: "parking (defaults)", requests: 100, mode: edgeParking}}
	if os.Getenv("TEOS_EDGE_COMPARE") != "" {
		runs = append(runs, edgeRun{name: "reset at once (api_max_parked_connections = 0)",
			toml: "api_max_parked_connections = 0\n", requests: 100, mode: edgeReset})
	}
	if os.Getenv("TEOS_EDGE_BASELINE") != "" {
		runs = append(runs, edgeRun{name: "baseline (global cap 1024, no per-address cap)",
			toml: "api_max_connections = 1024\napi_max_connections_per_address = 0\n", requests: 20})
	}
	repeat := 1
	if v := os.Getenv("TEOS_EDGE_REPEAT"); v != "" {
		if _, err := fmt.Sscan(v, &repeat); err != nil || repeat < 1 {
			t.Fatalf("TEOS_EDGE_REPEAT=%q", v)
		}
	}
	// How soon the attacker re-opens a connection the tower closed: at once it is a
	// connection flood, which loopback on a shared 2-core machine measures mostly as CPU.
	reopen := time.Second
	if v := os.Getenv("TEOS_EDGE_REOPEN"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			reopen = d
		}
	}
	for rep := range repeat {
		for i := range runs {
			if rep%2 == 1 { // the other order, so neither always runs on a warmer machine
				i = len(runs) - 1 - i
			}
			runs[i].attack(t, node, rep+1, reopen)
		}
	}
}

type edgeMode int

const (
	edgeUnchecked edgeMode = iota // the old settings: only measured
	edgeParking                   // the defaults: the attacker's excess is parked
	edgeReset                     // no parking: the attacker's excess is reset at once
)

type edgeRun struct {
	name, toml string
	requests   int
	mode       edgeMode
}

// loadAvg is the first three fields of /proc/loadavg ("" where there is none).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// meminfoKB is a /proc/meminfo field in kB (-1 where there is none).
func meminfoKB(field string) int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if name, rest, ok := strings.Cut(line, ":"); ok && name == field {
			var kb int
			if _, err := fmt.Sscan(rest, &kb); err == nil {
				return kb
			}
		}
	}
	return -1
}

func (run edgeRun) attack(t *testing.T, node *btcdtest.Node, rep int, reopen time.Duration) {
	const attackers, perAddress = 3000, 64
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n%s", metricsAddr, run.toml))
	tw.start()
	defer tw.stop()
	scrape := func() metricSamples { return scrapeMetrics(t, "http://"+metricsAddr+"/metrics") }
	honest := newUser(t)
	honest.register(t, tw)
	client := edgeClient("127.0.0.1", false)
	label := fmt.Sprintf("#%d %s", rep, run.name)
	measure := func(what string, n int) {
		var lat []time.Duration
		// Where the slowest requests spent their time: connecting (the tower's accept queue)
		// or waiting for the answer once the request was written (the tower's work).
		type phases struct{ at, total, connect, answer time.Duration }
		var slow []phases
		windowStart := time.Now()
		failed := 0
		for range n {
			time.Sleep(50 * time.Millisecond) // a client's pace: the run spans several re-open waves
			a := randomAppointment(t, 100)
			body := honest.addRequest(a)
			var connected, wrote, firstByte time.Time
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				ConnectDone:          func(string, string, error) { connected = time.Now() },
				WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = time.Now() },
				GotFirstResponseByte: func() { firstByte = time.Now() },
			})
			start := time.Now()
			status, raw, err := edgePostCtx(ctx, client, tw.apiURL, "/add_appointment", body, nil)
			lat = append(lat, time.Since(start))
			if err == nil && !connected.IsZero() && !firstByte.IsZero() && !wrote.IsZero() { // the transport is done with them
				slow = append(slow, phases{start.Sub(windowStart), lat[len(lat)-1], connected.Sub(start), firstByte.Sub(wrote)})
				slices.SortFunc(slow, func(x, y phases) int { return int(y.total - x.total) })
				slow = slow[:min(len(slow), 4)]
			}
			if v := pluginDecide(tw.id, body["signature"].(string), raw, err); v != verdictAccepted {
				failed++
				t.Logf("%s: honest request %s: %d %s %v", what, v, status, raw, err)
			}
		}
		slices.Sort(lat)
		t.Logf("%s, %s: %d requests, p50 %v, p99 %v, max %v, not accepted %d (load %s)", label, what, n,
			lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond),
			lat[len(lat)-1].Round(time.Microsecond), failed, loadAvg())
		for _, p := range slow {
			t.Logf("%s, %s: slow request at +%v: %v in all, connect %v, written to first byte %v", label, what,
				p.at.Round(time.Millisecond), p.total.Round(time.Microsecond), p.connect.Round(time.Microsecond), p.answer.Round(time.Microsecond))
		}
		if failed > 0 && run.mode != edgeUnchecked {
			t.Errorf("%s, %s: %d honest requests not accepted", label, what, failed)
		}
	}
	requests := run.requests
	if v := os.Getenv("TEOS_EDGE_REQUESTS"); v != "" && run.mode != edgeUnchecked {
		if _, err := fmt.Sscan(v, &requests); err != nil || requests < 1 {
			t.Fatalf("TEOS_EDGE_REQUESTS=%q", v)
		}
	}
	// The binaries this test process just built are still being written back to disk: their
	// writeback, ~30 s later, would slow the tower's fsyncs inside a measure window. Flush now.
	dirty := meminfoKB("Dirty")
	syscall.Sync()
	t.Logf("%s: flushed %d kB of dirty pages before measuring", label, dirty)
	measure("idle", requests)
	idle := scrape()

	host := strings.TrimPrefix(tw.apiURL, "http://")
	att := startAttacker(t, host, attackers, reopen)
	defer att.stop()
	attempts, opened, closedByTower := &att.attempts, &att.opened, &att.closedByTower
	// Let the attack reach its full size before measuring: the attacker has opened them
	// all and the tower has accepted them from its queue; then let it run a while, so the
	// window sees the steady state (the served ones cut at the first-byte deadline, the
	// first parked ones expiring and re-opened).
	for deadline := time.Now().Add(2 * time.Minute); opened.Load() < attackers ||
		scrape()["teos_api_connections_accepted_total"]-idle["teos_api_connections_accepted_total"] < attackers; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the attacker opened only %d connections in 2 min", opened.Load())
		}
	}
	time.Sleep(10 * time.Second)
	before, attempts0, opened0, start := scrape(), attempts.Load(), opened.Load(), time.Now()
	measure("under attack", requests)
	after, attempts1, opened1, took := scrape(), attempts.Load(), opened.Load(), time.Since(start)

	// Work per second while the honest client was measured: what the attacker opened and
	// what the tower's accepting loop did with it, counts a busy CPU does not inflate.
	rate := func(name string) float64 { return (after[name] - before[name]) / took.Seconds() }
	t.Logf("%s: over %v the attacker dialled %.0f/s and opened %.0f/s; the tower accepted %.0f/s, reset %.0f/s, parked %.0f/s, "+
		"promoted %.1f/s, expired %.0f/s; at the end %v served, %v parked (attacker: %d opened, %d closed by the tower in all)",
		label, took.Round(time.Millisecond), float64(attempts1-attempts0)/took.Seconds(), float64(opened1-opened0)/took.Seconds(),
		rate("teos_api_connections_accepted_total"), rate("teos_api_connections_reset_total"),
		rate("teos_api_connections_parked_total"), rate("teos_api_connections_promoted_total"),
		rate("teos_api_connections_park_expired_total"), after["teos_api_connections"],
		after["teos_api_connections_parked"], opened.Load(), closedByTower.Load())

	// The attacker is capped: the tower serves at most perAddress of its connections (and
	// the honest client's last few, not yet closed on the tower's side).
	if run.mode != edgeUnchecked && after["teos_api_connections"] > perAddress+8 {
		t.Errorf("%s: the tower serves %v connections, want at most the attacker's %d and a few honest ones",
			label, after["teos_api_connections"], perAddress)
	}
	switch run.mode {
	case edgeParking:
		if after["teos_api_connections_parked"] == 0 || after["teos_api_connections_parked_total"] < attackers-perAddress {
			t.Errorf("%s: %v parked now, %v in all, want the attacker's %d past the cap parked",
				label, after["teos_api_connections_parked"], after["teos_api_connections_parked_total"], attackers-perAddress)
		}
	case edgeReset:
		if closedByTower.Load() < attackers-perAddress || after["teos_api_connections_parked_total"] != 0 {
			t.Errorf("%s: the tower closed %d attacker connections (want at least %d, all past the cap) and parked %v (want 0)",
				label, closedByTower.Load(), attackers-perAddress, after["teos_api_connections_parked_total"])
		}
	}
}
