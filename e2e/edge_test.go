package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// What the CLN watchtower-client plugin makes of an /add_appointment answer
// (on_commitment_revocation and net/http.rs in rust-teos's watchtower-plugin): only a 200
// receipt is accepted; a connection failure or timeout keeps the appointment pending and
// retries it; an error with error_code 7 (subscription) is retried after re-registering;
// any other error_code files the appointment as invalid, for good; an answer it cannot
// parse drops it silently.
type clnVerdict string

const (
	clnAccepted clnVerdict = "accepted"
	clnPending  clnVerdict = "pending"
	clnInvalid  clnVerdict = "invalid"
	clnDropped  clnVerdict = "dropped"
)

func clnJudge(status int, raw []byte, err error) clnVerdict {
	if err != nil {
		return clnPending
	}
	if status == http.StatusOK {
		var r addResp
		if json.Unmarshal(raw, &r) != nil || r.Signature == "" {
			return clnDropped
		}
		return clnAccepted
	}
	var e struct {
		Code *int `json:"error_code"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Code == nil {
		return clnDropped
	}
	if *e.Code == teos.ErrCodeInvalidSignatureOrSubscriptionError {
		return clnPending
	}
	return clnInvalid
}

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
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
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

	verdicts := map[clnVerdict]int{}
	for i, a := range answers {
		v := clnJudge(a.status, a.raw, a.err)
		verdicts[v]++
		if v != clnAccepted {
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
	if verdicts[clnAccepted] != n {
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

// TestOneAddressCannotTakeTheTowerOffline: an attacker on 127.0.0.2 keeps opening idle
// connections (3,000 at a time, re-opening those the tower closes) while an honest client
// on 127.0.0.1 adds appointments, each on a new connection (no keep-alive). Every
// honest request is served; the attacker's connections past its per-address cap are closed
// at once. The honest client's latency, idle and under attack, is logged (no threshold:
// the machine is shared). TEOS_EDGE_BASELINE=1 also runs the attack against the old
// settings (global cap 1024, no per-address cap) for comparison.
func TestOneAddressCannotTakeTheTowerOffline(t *testing.T) {
	node := startNode(t)
	type run struct {
		name, toml string
		requests   int
	}
	runs := []run{{"defaults (per-address cap 64)", "", 100}}
	if os.Getenv("TEOS_EDGE_BASELINE") != "" {
		runs = append(runs, run{"baseline (global cap 1024, no per-address cap)",
			"api_max_connections = 1024\napi_max_connections_per_address = 0\n", 20})
	}
	// How soon the attacker re-opens a connection the tower closed: at once it is a
	// connection flood, which loopback on a shared 2-core machine measures mostly as CPU.
	reopen := time.Second
	if v := os.Getenv("TEOS_EDGE_REOPEN"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			reopen = d
		}
	}
	for _, run := range runs {
		tw := newTower(t, node, run.toml)
		tw.start()
		honest := newUser(t)
		honest.register(t, tw)
		client := edgeClient("127.0.0.1", false)
		measure := func(what string, n int) []time.Duration {
			var lat []time.Duration
			failed := 0
			for range n {
				time.Sleep(50 * time.Millisecond) // a client's pace: the run spans several re-open waves
				a := randomAppointment(t, 100)
				start := time.Now()
				status, raw, err := edgePost(client, tw.apiURL, "/add_appointment", honest.addRequest(a), nil)
				lat = append(lat, time.Since(start))
				if v := clnJudge(status, raw, err); v != clnAccepted {
					failed++
					t.Logf("%s: honest request %s: %d %s %v", what, v, status, raw, err)
				}
			}
			slices.Sort(lat)
			t.Logf("%s, %s: %d requests, p50 %v, p99 %v, max %v, not accepted %d", run.name, what, n,
				lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), failed)
			if failed > 0 && run.toml == "" {
				t.Errorf("%s: %d honest requests not accepted", what, failed)
			}
			return lat
		}
		measure("idle", run.requests)

		ctx, stop := context.WithCancel(context.Background())
		var opened, closedByTower atomic.Int64
		var wg sync.WaitGroup
		host := strings.TrimPrefix(tw.apiURL, "http://")
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
		for range 3000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 1)
				for ctx.Err() == nil {
					c, err := d.DialContext(ctx, "tcp", host)
					if err != nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					opened.Add(1)
					for { // send nothing; wait to be closed (or for the end of the test)
						_ = c.SetReadDeadline(time.Now().Add(time.Second))
						if _, err = c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
							break
						}
					}
					c.Close()
					if ctx.Err() == nil {
						closedByTower.Add(1)
						time.Sleep(reopen) // then re-open it
					}
				}
			}()
		}
		// Let the attack reach its full size before measuring.
		for deadline := time.Now().Add(2 * time.Minute); opened.Load() < 3000; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the attacker opened only %d connections in 2 min", opened.Load())
			}
		}
		measure("under attack", run.requests)
		if run.toml == "" && closedByTower.Load() < 3000-64 {
			t.Errorf("the tower closed %d attacker connections, want at least %d (all past the cap of 64)", closedByTower.Load(), 3000-64)
		}
		t.Logf("%s: attacker opened %d connections, the tower closed %d", run.name, opened.Load(), closedByTower.Load())
		stop()
		wg.Wait()
		tw.stop()
	}
}
