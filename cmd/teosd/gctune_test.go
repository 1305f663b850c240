package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestPlanGC(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name  string
		env   map[string]string
		avail uint64
		want  gcPlan
	}{
		{"defaults", nil, 4 * gib, gcPlan{percent: defaultGCPercent, setPercent: true, limit: 2 * gib, setLimit: true}},
		{"memory unknown: no limit", nil, 0, gcPlan{percent: defaultGCPercent, setPercent: true}},
		{"GOGC set", map[string]string{"GOGC": "100"}, 4 * gib, gcPlan{limit: 2 * gib, setLimit: true}},
		{"GOGC off", map[string]string{"GOGC": "off"}, 4 * gib, gcPlan{limit: 2 * gib, setLimit: true}},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, 4 * gib, gcPlan{percent: defaultGCPercent, setPercent: true}},
		{"both set", map[string]string{"GOGC": "50", "GOMEMLIMIT": "off"}, 4 * gib, gcPlan{}},
		{"huge memory", nil, math.MaxUint64, gcPlan{percent: defaultGCPercent, setPercent: true, limit: math.MaxInt64, setLimit: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planGC(func(k string) string { return tc.env[k] }, tc.avail)
			if got != tc.want {
				t.Fatalf("planGC = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMemoryFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got := memTotal(write("meminfo", "MemFree: 10 kB\nMemTotal:       16303428 kB\nSwapTotal: 0 kB\n")); got != 16303428*1024 {
		t.Fatalf("memTotal = %d", got)
	}
	for _, bad := range []string{"MemFree: 10 kB\n", "MemTotal: 12\n", "MemTotal: x kB\n", "MemTotal: 1 MB\n", ""} {
		if got := memTotal(write("bad", bad)); got != 0 {
			t.Fatalf("memTotal(%q) = %d, want 0", bad, got)
		}
	}
	if got := memTotal(filepath.Join(dir, "missing")); got != 0 {
		t.Fatalf("memTotal(missing) = %d", got)
	}
	if got := cgroupLimit(write("max", "536870912\n")); got != 536870912 {
		t.Fatalf("cgroupLimit = %d", got)
	}
	for _, none := range []string{"max\n", "", "-1"} {
		if got := cgroupLimit(write("max", none)); got != 0 {
			t.Fatalf("cgroupLimit(%q) = %d, want 0", none, got)
		}
	}
}

// TestTuneGCHonoursEnvironment runs tuneGC in a child process (the runtime reads GOGC and
// GOMEMLIMIT at start) and checks what the collector ends up with.
func TestTuneGCHonoursEnvironment(t *testing.T) {
	if os.Getenv("TEOSD_TUNEGC_CHILD") == "1" {
		tuneGC(slog.New(slog.DiscardHandler))
		percent := debug.SetGCPercent(-1)
		fmt.Printf("percent=%d limit=%d\n", percent, debug.SetMemoryLimit(-1))
		return
	}
	avail := availableMemory()
	for _, tc := range []struct {
		env     []string
		percent int
		limit   int64 // -1: half of availableMemory, or no limit when that is unknown
	}{
		{nil, defaultGCPercent, -1},
		{[]string{"GOGC=150"}, 150, -1},
		{[]string{"GOGC=off"}, -1, -1},
		{[]string{"GOMEMLIMIT=123MiB"}, defaultGCPercent, 123 << 20},
		{[]string{"GOGC=70", "GOMEMLIMIT=1GiB"}, 70, 1 << 30},
	} {
		t.Run(strings.Join(tc.env, ","), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestTuneGCHonoursEnvironment$")
			cmd.Env = append(os.Environ(), "TEOSD_TUNEGC_CHILD=1", "GOGC=", "GOMEMLIMIT=")
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			limit := tc.limit
			if limit == -1 {
				limit = math.MaxInt64
				if avail > 0 {
					limit = int64(min(avail/memLimitDivisor, math.MaxInt64))
				}
			}
			want := fmt.Sprintf("percent=%d limit=%d\n", tc.percent, limit)
			if !strings.Contains(string(out), want) {
				t.Fatalf("child printed %q, want %q", out, want)
			}
		})
	}
}
