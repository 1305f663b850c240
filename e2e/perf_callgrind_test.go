//go:build perf

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestPerfAddCallgrind runs teosd under valgrind's callgrind and counts its user-space
// instructions while teos-bench adds appointments (issue 13 item 2): timing figures move with
// the machine's load, instruction counts do not. After a warm-up of PERF_CG_WARMUP (1000) adds,
// it takes two windows, each a teos-bench run with its counters zeroed before and dumped after:
// a short one of PERF_CG_SHORT (300) adds and a long one of PERF_CG_ADDS (3000). Both pay the
// same fixed part (registering the users, teos-bench's connections), so the long window minus
// the short, divided by the difference in adds, is the instructions of one add. The dumps go to
// PERF_CG_DIR (kept) for scripts/perf-callgrind.sh to annotate. PERF_CLIENTS (64) connections;
// under callgrind teosd runs ~50x slower than the client, so its add batches are full.
// GODEBUG=asyncpreemptoff=1: callgrind 3.19 aborts on Go's preemption signal.
// PERF_CG_NATIVE=1 runs the same windows without valgrind and prints teosd's user and system
// CPU per add instead (from /proc, 10 ms ticks: use a large PERF_CG_ADDS), the kernel's share
// that callgrind cannot see.
func TestPerfAddCallgrind(t *testing.T) {
	native := os.Getenv("PERF_CG_NATIVE") != ""
	if _, err := exec.LookPath("valgrind"); err != nil && !native {
		t.Skip("no valgrind")
	}
	dir := os.Getenv("PERF_CG_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	clients := strconv.Itoa(envInt(t, "PERF_CLIENTS", 64))
	warm, short, long := envInt(t, "PERF_CG_WARMUP", 1000), envInt(t, "PERF_CG_SHORT", 300), envInt(t, "PERF_CG_ADDS", 3000)
	if long <= short {
		t.Fatalf("PERF_CG_ADDS %d must exceed PERF_CG_SHORT %d", long, short)
	}
	node := startNode(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\napi_max_connections_per_address = 0\n", metricsAddr))
	// No chain polling inside the windows: its count would depend on how long they take.
	toml := filepath.Join(tw.dataDir, "teos.toml")
	raw, err := os.ReadFile(toml)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(toml, []byte(strings.Replace(string(raw), `polling_interval = "100ms"`, `polling_interval = "1h"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The binary goes with the dumps: the analysis maps their instruction addresses to its symbols.
	bin := filepath.Join(dir, "teosd")
	raw, err = os.ReadFile(teosdBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o700); err != nil {
		t.Fatal(err)
	}
	// --dump-instr: costs by instruction address. Callgrind's own attribution to functions
	// follows calls and returns, which Go's goroutine switches (jumps between stacks) confuse:
	// the same build's dumps gave one function's cost to another from run to run.
	wrap := filepath.Join(t.TempDir(), "teosd-callgrind")
	// PERF_CG_CACHE=1 adds callgrind's cache simulation (slower): misses by function.
	cacheSim := "no"
	if os.Getenv("PERF_CG_CACHE") != "" {
		cacheSim = "yes"
	}
	script := fmt.Sprintf("#!/bin/sh\nGODEBUG=asyncpreemptoff=1 exec valgrind --tool=callgrind --cache-sim=%s --dump-instr=yes --dump-line=no --callgrind-out-file=%s/callgrind.out.%%p %s \"$@\"\n",
		cacheSim, dir, bin)
	if err := os.WriteFile(wrap, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	if !native {
		tw.bin = wrap
		tw.startWait = 10 * time.Minute // valgrind starts teosd slowly on a loaded machine
	}
	tw.start()
	pid := strconv.Itoa(tw.cmd.Process.Pid) // valgrind's, which exec'd over the shell
	control := func(args ...string) {
		t.Helper()
		if native {
			return
		}
		out, err := exec.Command("callgrind_control", append(args, pid)...).CombinedOutput()
		if err != nil {
			t.Fatalf("callgrind_control %v: %v\n%s", args, err, out)
		}
	}
	bench := func(n int) {
		t.Helper()
		// -bound 0: no crypto timing inside teos-bench; -verifyevery 0 is not allowed, so
		// check one receipt in n (a client cost, outside teosd). A long -timeout: under
		// callgrind on a loaded machine an add can take seconds, which changes no count.
		runBench(t, tw, "-users", clients, "-c", clients, "-n", strconv.Itoa(n), "-http", "lean",
			"-bound", "0", "-verifyevery", strconv.Itoa(n), "-timeout", "10m")
	}
	bench(warm)
	type window struct {
		name string
		adds int
	}
	// What moves the count from run to run: how the adds fell into batches, and how many
	// collections a window held (each costs the same whatever the adds did in between).
	var lines []string
	cpu := map[string][2]time.Duration{} // user, system
	for _, w := range []window{{"short", short}, {"long", long}} {
		h0 := scrapeHistogram(t, metricsURL, "teos_api_add_batch_size")
		g0 := scrapeGoGC(t, metricsURL)
		time.Sleep(time.Second) // the scrape's own work done before the zero
		control("-z")
		u0, s0 := userSys(t, tw)
		bench(w.adds)
		u1, s1 := userSys(t, tw)
		control("--dump=" + w.name)
		if native {
			cpu[w.name] = [2]time.Duration{u1 - u0, s1 - s0}
		}
		h := scrapeHistogram(t, metricsURL, "teos_api_add_batch_size").minus(h0)
		g := scrapeGoGC(t, metricsURL)
		lines = append(lines, fmt.Sprintf("%s: %d adds in %d internal calls (%.1f per call), %.0f collections, %.0f bytes allocated per add",
			w.name, int(h.sum), h.count, h.sum/float64(max(h.count, 1)), g.cycles-g0.cycles, (g.allocated-g0.allocated)/float64(w.adds)))
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	if native {
		n := float64(long - short)
		us := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
		fmt.Printf("teosd CPU per add, (long - short) / %d: user %.0f µs, system %.0f µs\n", long-short,
			us(cpu["long"][0]-cpu["short"][0]), us(cpu["long"][1]-cpu["short"][1]))
		return
	}
	fmt.Printf("callgrind dumps of pid %s in %s (short %d adds, long %d adds)\n", pid, dir, short, long)
	// SIGTERM would trip callgrind 3.19 the same way as the preemption signal; the dumps are written.
	tw.kill()
}

type goGC struct{ cycles, allocated float64 }

// scrapeGoGC reads the Go collector's cycle count and the bytes allocated so far from teosd's
// metrics.
func scrapeGoGC(t *testing.T, url string) goGC {
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
	gc, ok1 := fams["go_gc_duration_seconds"]
	alloc, ok2 := fams["go_memstats_alloc_bytes_total"]
	if !ok1 || !ok2 || len(gc.GetMetric()) == 0 || len(alloc.GetMetric()) == 0 {
		t.Fatal("scrape has no go_gc_duration_seconds or go_memstats_alloc_bytes_total")
	}
	return goGC{float64(gc.GetMetric()[0].GetSummary().GetSampleCount()), alloc.GetMetric()[0].GetCounter().GetValue()}
}

// userSys is teosd's user and system CPU time so far, from /proc (10 ms ticks).
func userSys(t *testing.T, tw *tower) (user, sys time.Duration) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tw.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime) * 10 * time.Millisecond, time.Duration(stime) * 10 * time.Millisecond
}
