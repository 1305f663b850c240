//go:build perf

// Performance scenarios against a real btcd and teosd on loopback. They print figures rather
// than assert speed (the machine is shared); they do fail on errors. Run one at a time through
// scripts/perf-*.sh, e.g. go test -tags perf -run '^TestPerfHTTP$' -v -count=1 ./e2e
package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/teos-go/teos/internal/btcdtest"
)

var (
	benchBinOnce sync.Once
	benchBin     string
	benchBinErr  error
)

// teosBench builds cmd/teos-bench once per test binary.
func teosBench(t *testing.T) string {
	t.Helper()
	benchBinOnce.Do(func() {
		benchBin = filepath.Join(filepath.Dir(teosdBin), "teos-bench")
		out, err := exec.Command("go", "build", "-o", benchBin, "../cmd/teos-bench").CombinedOutput()
		if err != nil {
			benchBinErr = fmt.Errorf("build teos-bench: %w\n%s", err, out)
		}
	})
	if benchBinErr != nil {
		t.Fatal(benchBinErr)
	}
	return benchBin
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// benchReport is the part of teos-bench's JSON report the scenarios check.
type benchReport struct {
	Endpoints []struct {
		Endpoint string  `json:"endpoint"`
		Requests int     `json:"requests"`
		Errors   int64   `json:"errors"`
		OKPerSec float64 `json:"ok_per_sec"`
		P50      float64 `json:"p50_ms"`
		P99      float64 `json:"p99_ms"`
	} `json:"endpoints"`
	Errors            map[string]int64 `json:"errors"`
	ReceiptMismatches int64            `json:"receipt_mismatches"`
	LoadCPUSeconds    float64          `json:"load_cpu_seconds"`
}

// benchCmd prepares teos-bench against tw; its table goes to stdout, its JSON to the returned path.
func benchCmd(t *testing.T, tw *tower, args ...string) (*exec.Cmd, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bench.json")
	args = append([]string{"-url", tw.apiURL, "-towerid", tw.id.String(), "-jsonout", out, "-verifyevery", "32"}, args...)
	cmd := exec.Command(teosBench(t), args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	fmt.Printf("\n$ teos-bench %s\n", strings.Join(args, " "))
	return cmd, out
}

func readBenchReport(t *testing.T, path string) benchReport {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r benchReport
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("teos-bench report: %v", err)
	}
	if len(r.Errors) > 0 || r.ReceiptMismatches > 0 {
		t.Errorf("teos-bench saw errors %v, %d bad receipts", r.Errors, r.ReceiptMismatches)
	}
	return r
}

func runBench(t *testing.T, tw *tower, args ...string) benchReport {
	t.Helper()
	cmd, out := benchCmd(t, tw, args...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("teos-bench: %v", err)
	}
	return readBenchReport(t, out)
}

// TestPerfHTTP measures add_appointment over HTTP against a durable teosd (fsync on, the
// default), with requests signed ahead and signed inline.
func TestPerfHTTP(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start()
	clients := envInt(t, "PERF_CLIENTS", 64)
	d := envDuration(t, "PERF_DURATION", 20*time.Second)
	c := strconv.Itoa(clients)
	for _, args := range [][]string{
		{"-users", c, "-c", c, "-duration", d.String()},
		{"-users", c, "-c", c, "-duration", (d / 2).String(), "-sign", "inline"},
		{"-users", c, "-c", c, "-duration", (d / 2).String(), "-mix", "add=1,get=0.1,info=0.05"},
		{"-users", "1", "-c", "1", "-duration", (d / 2).String()},
	} {
		cpu0 := cpuTime(t, tw)
		rep := runBench(t, tw, args...)
		used := cpuTime(t, tw) - cpu0
		total := 0
		for _, e := range rep.Endpoints {
			total += e.Requests
		}
		// teosd's own CPU per request, which the machine's other load does not inflate much:
		// compare it with the crypto bound's cost per add.
		fmt.Printf("teosd CPU: %.0f µs per request (%d requests, %s CPU)\n",
			float64(used.Microseconds())/float64(max(total, 1)), total, used.Round(time.Millisecond))
	}
	fmt.Printf("\nteosd: %s\n", procStatus(tw))
}

// TestPerfCatchup stops a loaded tower, mines 1,000 blocks with breaches spread among them,
// and times the restart until the API answers (teosd opens its API after catching up).
func TestPerfCatchup(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()
	fill := envInt(t, "PERF_FILL", 20000)
	missed := envInt(t, "PERF_MISSED", 1000)
	nBreaches := envInt(t, "PERF_BREACHES", 10)
	if fill > 0 {
		runBench(t, tw, "-users", "16", "-c", "16", "-n", strconv.Itoa(fill), "-bound", "0")
	}
	alice := newUser(t)
	alice.register(t, tw)
	breaches := make([]*btcdtest.Breach, nBreaches)
	for i := range breaches {
		breaches[i] = node.NewBreach(t)
		alice.add(t, tw, breachAppointment(t, breaches[i]))
	}

	tw.stop()
	start := time.Now()
	tw.start()
	baseline := time.Since(start)
	tw.stop()

	start = time.Now()
	every := missed / max(nBreaches, 1)
	mined, sent := 0, 0
	for mined < missed {
		if sent < nBreaches && mined >= every/2+sent*every {
			c.send(t, breaches[sent].Commitment)
			sent++
		}
		step := min(missed-mined, max(every/2, 1))
		if sent < nBreaches {
			step = min(step, every/2+sent*every-mined)
		}
		node.Generate(t, uint32(max(step, 1)))
		mined += max(step, 1)
	}
	fmt.Printf("\nmined %d blocks (%d with a breach) in %s\n", mined, sent, time.Since(start).Round(time.Millisecond))
	tip := c.tip(t)

	load := loadAvg()
	start = time.Now()
	tw.start()
	catchup := time.Since(start)
	if h := towerHeight(t, tw); h != tip {
		t.Fatalf("tower at %d after restart, tip %d", h, tip)
	}
	for _, b := range breaches {
		alice.wantResponded(t, tw, b)
	}
	fmt.Printf("catch-up: restart to API ready with %d missed blocks: %s (restart with none missed: %s); "+
		"%d stored appointments, %d breaches answered; load average %s\n",
		missed, catchup.Round(time.Millisecond), baseline.Round(time.Millisecond), fill+nBreaches, nBreaches, load)
	fmt.Printf("per missed block: %.2f ms\nteosd: %s\n", float64((catchup-baseline).Microseconds())/1e3/float64(missed), procStatus(tw))
}

// TestPerfBlocksUnderLoad runs PERF_CLIENTS clients adding appointments while a block is mined
// every second, some with breaches, and reads block processing times from teosd's metrics.
func TestPerfBlocksUnderLoad(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	// Every client connects from 127.0.0.1: lift the per-address connection cap (64).
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\napi_max_connections_per_address = 0\n", metricsAddr))
	tw.start()
	clients := envInt(t, "PERF_CLIENTS", 100)
	d := envDuration(t, "PERF_DURATION", 30*time.Second)

	alice := newUser(t)
	alice.register(t, tw)
	// 5 breaches for the loaded phase, then 2 for the idle one.
	breaches := make([]*btcdtest.Breach, 7)
	for i := range breaches {
		breaches[i] = node.NewBreach(t)
		alice.add(t, tw, breachAppointment(t, breaches[i]))
	}
	idleBreaches := breaches[5:]
	breaches = breaches[:5]
	// Each block's own processing time, from the histogram's sum before and after it.
	var idleTimes, idleBreachTimes, loadedTimes, loadedBreachTimes []time.Duration
	timed := func(breach bool, into, intoBreach *[]time.Duration) {
		h0 := scrapeHistogram(t, metricsURL, "teos_block_processing_seconds")
		node.Generate(t, 1)
		var h histogram
		waitFor(t, "the block processed", func() bool {
			h = scrapeHistogram(t, metricsURL, "teos_block_processing_seconds")
			return h.count > h0.count
		})
		d := time.Duration((h.sum - h0.sum) * float64(time.Second))
		if breach {
			*intoBreach = append(*intoBreach, d)
		} else {
			*into = append(*into, d)
		}
	}

	// Idle baseline: the same kind of blocks with no client load.
	before := scrapeHistogram(t, metricsURL, "teos_block_processing_seconds")
	for i := range 10 {
		breach := i%5 == 2
		if breach {
			c.send(t, idleBreaches[i/5].Commitment)
		}
		timed(breach, &idleTimes, &idleBreachTimes)
		time.Sleep(200 * time.Millisecond)
	}
	waitTowerAt(t, tw, c.tip(t))
	idle := scrapeHistogram(t, metricsURL, "teos_block_processing_seconds").minus(before)

	c2 := strconv.Itoa(clients)
	cmd, out := benchCmd(t, tw, "-users", c2, "-c", c2, "-duration", d.String())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	loaded0 := scrapeHistogram(t, metricsURL, "teos_block_processing_seconds")
	waits0 := scrapeHistogram(t, metricsURL, "teos_blocks_first_wait_seconds")
	atBound0 := scrapeMetrics(t, metricsURL).value(t, "teos_blocks_first_waits_at_bound_total")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	blocks, sent := 0, 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
mining:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("teos-bench: %v", err)
			}
			break mining
		case <-tick.C:
			// Breaches in every fifth block once the clients are running, while they last.
			breach := blocks%5 == 2 && sent < len(breaches)
			if breach {
				c.send(t, breaches[sent].Commitment)
				sent++
			}
			timed(breach, &loadedTimes, &loadedBreachTimes)
			blocks++
		}
	}
	rep := readBenchReport(t, out)
	waitTowerAt(t, tw, c.tip(t))
	loaded := scrapeHistogram(t, metricsURL, "teos_block_processing_seconds").minus(loaded0)
	waits := scrapeHistogram(t, metricsURL, "teos_blocks_first_wait_seconds").minus(waits0)
	atBound := scrapeMetrics(t, metricsURL).value(t, "teos_blocks_first_waits_at_bound_total") - atBound0
	for _, b := range append(breaches[:sent], idleBreaches...) {
		alice.wantResponded(t, tw, b)
	}
	var added int
	for _, e := range rep.Endpoints {
		if e.Endpoint == "add_appointment" {
			added = e.Requests
		}
	}
	fmt.Printf("\nblock processing (teos_block_processing_seconds; p from histogram buckets, upper bound):\n")
	fmt.Printf("  idle:      %s\n", idle)
	fmt.Printf("  %3d clients: %s; %d blocks mined during the load, %d with a breach, %d appointments added\n",
		clients, loaded, blocks, sent, added)
	fmt.Printf("per block (each block's own time, from the histogram's sum):\n")
	fmt.Printf("  idle, no breach:     %s\n", durStats(idleTimes))
	fmt.Printf("  idle, breach:        %s\n", durStats(idleBreachTimes))
	fmt.Printf("  loaded, no breach:   %s\n", durStats(loadedTimes))
	fmt.Printf("  loaded, breach:      %s\n", durStats(loadedBreachTimes))
	if waits.count > 0 {
		fmt.Printf("requests' waits for blocks during the load (teos_blocks_first_wait_seconds): %d, mean %.2f ms, "+
			"p50 <= %.1f ms, p99 <= %.0f ms, %.0f cut at the bound\n", waits.count, 1e3*waits.sum/float64(waits.count),
			1e3*waits.quantile(0.5), 1e3*waits.quantile(0.99), atBound)
	}
	fmt.Printf("teosd: %s\n", procStatus(tw))
}

// durStats is n, mean, p50, p90 and max of ds.
func durStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return fmt.Sprintf("%d blocks, mean %.2f ms, p50 %.2f ms, p90 %.2f ms, max %.2f ms", len(s), ms(sum/time.Duration(len(s))),
		ms(s[len(s)/2]), ms(s[len(s)*9/10]), ms(s[len(s)-1]))
}

// histogram is a Prometheus histogram's cumulative buckets.
type histogram struct {
	count   uint64
	sum     float64
	uppers  []float64
	buckets []uint64
}

func scrapeHistogram(t *testing.T, url, name string) histogram {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	mf, ok := fams[name]
	if !ok || len(mf.GetMetric()) == 0 || mf.GetMetric()[0].GetHistogram() == nil {
		t.Fatalf("scrape has no histogram %s", name)
	}
	h := mf.GetMetric()[0].GetHistogram()
	out := histogram{count: h.GetSampleCount(), sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		out.uppers = append(out.uppers, b.GetUpperBound())
		out.buckets = append(out.buckets, b.GetCumulativeCount())
	}
	return out
}

func (h histogram) minus(o histogram) histogram {
	d := histogram{count: h.count - o.count, sum: h.sum - o.sum, uppers: h.uppers, buckets: make([]uint64, len(h.buckets))}
	for i := range h.buckets {
		d.buckets[i] = h.buckets[i] - o.buckets[i]
	}
	return d
}

// quantile is the upper bound of the bucket holding the q-quantile.
func (h histogram) quantile(q float64) float64 {
	rank := uint64(math.Ceil(q * float64(h.count)))
	for i, c := range h.buckets {
		if c >= rank {
			return h.uppers[i]
		}
	}
	return math.Inf(1)
}

func (h histogram) String() string {
	if h.count == 0 {
		return "no blocks"
	}
	return fmt.Sprintf("%d blocks, mean %.1f ms, p50 <= %.0f ms, p99 <= %.0f ms", h.count,
		1e3*h.sum/float64(h.count), 1e3*h.quantile(0.5), 1e3*h.quantile(0.99))
}

// cpuTime is teosd's user+system CPU time so far, from /proc (clock ticks of 10 ms).
func cpuTime(t *testing.T, tw *tower) time.Duration {
	t.Helper()
	user, sys := userSys(t, tw)
	return user + sys
}

// procStatus is teosd's resident memory, read from /proc.
func procStatus(tw *tower) string {
	if tw.cmd == nil || tw.cmd.Process == nil {
		return "not running"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tw.cmd.Process.Pid))
	if err != nil {
		return "n/a"
	}
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, key := range []string{"VmHWM:", "VmRSS:", "RssAnon:"} {
			if strings.HasPrefix(line, key) {
				parts = append(parts, strings.Join(strings.Fields(line), " "))
			}
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ") + ", load average " + loadAvg()
}
