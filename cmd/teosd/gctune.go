package main

import (
	"bufio"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// teosd's live heap is small (a few MiB) while every add allocates ~20 KiB, so with Go's default
// GOGC=100 the collector runs many times a second under load. A higher percentage with a soft
// memory limit as the brake cuts that work; the limit only makes the collector run sooner as the
// heap nears it, so a tower with a large heap is held to it rather than to five times its live
// heap. Operators keep the last word: GOGC and GOMEMLIMIT, when set, are left as they are.
const (
	defaultGCPercent = 400
	// The soft limit is the memory available to teosd (cgroup limit or RAM) divided by this.
	memLimitDivisor = 2
)

// gcPlan is what tuneGC sets: percent when setPercent, limit (bytes) when setLimit.
type gcPlan struct {
	percent    int
	setPercent bool
	limit      int64
	setLimit   bool
}

// planGC decides the settings from the environment (getenv) and the memory available to the
// process (avail, 0 when unknown). An environment variable that is set, even to a value the
// runtime refused, is the operator's choice and is not overridden.
func planGC(getenv func(string) string, avail uint64) gcPlan {
	var p gcPlan
	if getenv("GOGC") == "" {
		p.percent, p.setPercent = defaultGCPercent, true
	}
	if getenv("GOMEMLIMIT") == "" && avail > 0 {
		p.limit, p.setLimit = int64(min(avail/memLimitDivisor, math.MaxInt64)), true
	}
	return p
}

// tuneGC applies teosd's garbage collector defaults where the operator set none and logs what
// the collector runs with.
func tuneGC(log *slog.Logger) {
	p := planGC(os.Getenv, availableMemory())
	applyGC(p)
	percent := debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	log.Debug("garbage collector", "gc_percent", percent, "memory_limit", debug.SetMemoryLimit(-1),
		"GOGC", os.Getenv("GOGC"), "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"))
}

func applyGC(p gcPlan) {
	if p.setPercent {
		debug.SetGCPercent(p.percent)
	}
	if p.setLimit {
		debug.SetMemoryLimit(p.limit)
	}
}

// availableMemory is the memory limit of teosd's cgroup (v2, or v1's memory controller) if
// there is one, else the machine's RAM; 0 when neither can be read (not Linux).
func availableMemory() uint64 {
	ram := memTotal("/proc/meminfo")
	if lim := cgroupMemoryLimit("/proc/self/cgroup", "/sys/fs/cgroup"); lim > 0 && (ram == 0 || lim < ram) {
		return lim
	}
	return ram
}

// cgroupMemoryLimit is the tightest memory limit on the cgroup that the file procCgroup
// (/proc/self/cgroup) names and on its ancestors, read under the hierarchy mounted at root: a
// systemd unit's MemoryMax= sits on /sys/fs/cgroup/system.slice/<unit>/memory.max, not on the
// mount's root, and cgroup v1 (still the default of some container hosts) keeps it in
// memory/<path>/memory.limit_in_bytes. Directories that are not there are skipped, so a
// container that sees its own cgroup at the mount's root (a cgroup namespace, or v1's bind
// mount) finds its limit there. 0 when there is none.
func cgroupMemoryLimit(procCgroup, root string) uint64 {
	b, err := os.ReadFile(procCgroup)
	if err != nil {
		return 0
	}
	var best uint64
	take := func(n uint64) {
		if n > 0 && (best == 0 || n < best) {
			best = n
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "": // v2
			take(cgroupWalk(root, parts[2], "memory.max"))
		case slices.Contains(strings.Split(parts[1], ","), "memory"): // v1
			take(cgroupWalk(filepath.Join(root, "memory"), parts[2], "memory.limit_in_bytes"))
		}
	}
	return best
}

// cgroupWalk reads file in the cgroup dir rel under mount and in each of its ancestors up to
// the mount, and returns the smallest limit found (0: none).
func cgroupWalk(mount, rel, file string) uint64 {
	var best uint64
	dir := filepath.Join(mount, filepath.Clean("/"+rel))
	for {
		if n := cgroupLimit(filepath.Join(dir, file)); n > 0 && (best == 0 || n < best) {
			best = n
		}
		if dir == mount || len(dir) < len(mount) {
			return best
		}
		dir = filepath.Dir(dir)
	}
}

// cgroupLimit reads a cgroup v2 memory.max file: a byte count, or "max" (none: 0).
func cgroupLimit(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// memTotal reads MemTotal from a /proc/meminfo file, in bytes (0 when absent).
func memTotal(path string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil || kb > math.MaxUint64/1024 {
			return 0
		}
		return kb * 1024
	}
	return 0
}
