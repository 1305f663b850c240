//go:build perf

package e2e

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPerfAddAB measures the durable add path of two teosd binaries side by side (issue 13's
// lean add path): PERF_TEOSD_BASE (a binary built from the baseline commit; without it only this
// tree's teosd runs) and this tree's teosd, alternating, PERF_ROUNDS rounds each, every run on a
// fresh tower against the same btcd. Per run: teos-bench with PERF_CLIENTS (64) users and
// connections for PERF_DURATION (10s), presigned (PERF_PRESIGN_RATE per second, 15000), over
// teos-bench's PERF_BENCH_HTTP client (lean), and teosd's CPU per add from /proc, which the
// machine's other load inflates far less than the wall-clock figures. With PERF_PROFILE_DIR, each
// of this tree's runs also saves a CPU profile (the middle of the load) and an allocation profile
// of teosd there, served by its opt-in TEOSD_PPROF endpoint.
func TestPerfAddAB(t *testing.T) {
	node := startNode(t)
	clients := strconv.Itoa(envInt(t, "PERF_CLIENTS", 64))
	d := envDuration(t, "PERF_DURATION", 10*time.Second)
	rounds := envInt(t, "PERF_ROUNDS", 2)
	profDir := os.Getenv("PERF_PROFILE_DIR")
	// The lean client leaves more of the shared cores to teosd; PERF_BENCH_HTTP=net/http
	// measures with Go's standard client instead.
	benchHTTP := cmp.Or(os.Getenv("PERF_BENCH_HTTP"), "lean")
	// Enough presigned requests that a fast tower never makes teos-bench sign inside the load.
	presignRate := envInt(t, "PERF_PRESIGN_RATE", 15000)
	type variant struct {
		name, bin string
		env       []string // KEY=VALUE for teosd
	}
	variants := []variant{{"this tree", teosdBin, nil}}
	if base := os.Getenv("PERF_TEOSD_BASE"); base != "" {
		variants = append([]variant{{"base", base, nil}}, variants...)
	}
	// PERF_ENV_VARIANTS="name:KEY=VALUE,KEY=VALUE;name2:..." adds runs of this tree's teosd with
	// its measurement switches (e.g. tcp:TEOSD_INTERNAL_HOP=tcp).
	for _, spec := range strings.Split(os.Getenv("PERF_ENV_VARIANTS"), ";") {
		if name, env, ok := strings.Cut(spec, ":"); ok {
			variants = append(variants, variant{name, teosdBin, strings.Split(env, ",")})
		}
	}
	own := teosdBin
	defer func() { teosdBin = own }()
	type row struct {
		name                        string
		adds                        int
		perSec, p50, p99, cpuPerAdd float64
		benchPerReq                 float64 // teos-bench's own CPU per request in the timed phase
		load                        string
	}
	var rows []row
	for r := 0; r < rounds; r++ {
		for _, v := range variants {
			teosdBin = v.bin
			// teos-bench opens more than the default 64 connections per address (its registrations
			// run beside the load's connections).
			tw := newTower(t, node, "api_max_connections_per_address = 0\n")
			pprofAddr := ""
			if profDir != "" && v.bin == own {
				pprofAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
				t.Setenv("TEOSD_PPROF", pprofAddr)
			} else {
				t.Setenv("TEOSD_PPROF", "")
			}
			for _, kv := range v.env {
				k, val, _ := strings.Cut(kv, "=")
				t.Setenv(k, val)
			}
			tw.start()
			for _, kv := range v.env {
				k, _, _ := strings.Cut(kv, "=")
				os.Unsetenv(k)
			}
			cmd, out := benchCmd(t, tw, "-users", clients, "-c", clients, "-duration", d.String(), "-http", benchHTTP,
				"-presign", strconv.Itoa(int(float64(presignRate)*d.Seconds())), "-verifyevery", "256")
			cpu0 := cpuTime(t, tw)
			load := loadAvg()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if pprofAddr != "" {
				// teos-bench presigns first: the load starts when teosd gets busy.
				go func(r int) {
					for last := cpuTime(t, tw); ; {
						time.Sleep(100 * time.Millisecond)
						now := cpuTime(t, tw)
						if now-last >= 50*time.Millisecond {
							break
						}
						last = now
					}
					time.Sleep(d / 6)
					saveProfile(t, pprofAddr, fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(1, int(d.Seconds()/2))),
						filepath.Join(profDir, fmt.Sprintf("cpu-%s-%d.pprof", fileName(v.name), r)))
				}(r)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("teos-bench: %v", err)
			}
			used := cpuTime(t, tw) - cpu0
			if pprofAddr != "" {
				saveProfile(t, pprofAddr, "/debug/pprof/allocs", filepath.Join(profDir, fmt.Sprintf("allocs-%s-%d.pprof", fileName(v.name), r)))
			}
			rep := readBenchReport(t, out)
			rw := row{name: v.name, load: load}
			total := 0
			for _, e := range rep.Endpoints {
				total += e.Requests
				if e.Endpoint == "add_appointment" {
					rw.adds, rw.perSec, rw.p50, rw.p99 = e.Requests, e.OKPerSec, e.P50, e.P99
				}
			}
			// Registrations are a few dozen requests; the CPU is charged to every request.
			rw.cpuPerAdd = float64(used.Microseconds()) / float64(max(total, 1))
			rw.benchPerReq = rep.LoadCPUSeconds * 1e6 / float64(max(total, 1))
			rows = append(rows, rw)
			tw.kill()
		}
	}
	fmt.Printf("\n%-12s %8s %9s %8s %8s %12s %12s  %s\n", "teosd", "adds", "adds/s", "p50 ms", "p99 ms", "CPU µs/add", "bench µs/req", "load at start")
	for _, rw := range rows {
		fmt.Printf("%-12s %8d %9.0f %8.2f %8.2f %12.0f %12.0f  %s\n", rw.name, rw.adds, rw.perSec, rw.p50, rw.p99, rw.cpuPerAdd, rw.benchPerReq, rw.load)
	}
	fmt.Printf("load average at the end: %s\n", loadAvg())
}

func saveProfile(t *testing.T, addr, path, file string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Errorf("profile %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		t.Errorf("profile %s: %v", path, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Errorf("profile %s: %v", path, err)
	}
}

// fileName makes a variant's name usable in a file name.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '/' {
			return '-'
		}
		return r
	}, s)
}
