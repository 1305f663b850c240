#!/bin/sh
# User-space instructions per durable add in teosd (issue 13 item 2), counted by valgrind's
# callgrind, which the machine's load does not change (e2e TestPerfAddCallgrind): teosd (cgo,
# libsecp256k1) under callgrind against btcd, teos-bench with PERF_CLIENTS (64) presigned
# clients; a short (PERF_CG_SHORT, 300 adds) and a long (PERF_CG_ADDS, 3000) window after a
# warm-up, and per add = (long - short) / (difference in adds). Prints the total, the self
# instructions per add by area and the top functions; the dumps stay in PERF_CG_DIR (default a
# new temporary directory). PERF_CG_BASE=DIR (an earlier run's PERF_CG_DIR) adds a column with
# that run's figures. PERF_CG_ONLY=DIR analyses an earlier run without running anything.
# PERF_CG_CACHE=1 adds callgrind's cache simulation (data cache misses per add by area; slower).
# PERF_CG_NATIVE=1 runs the windows without valgrind and prints teosd's user and system CPU per
# add instead (from /proc, 10 ms ticks: use e.g. PERF_CG_SHORT=3000 PERF_CG_ADDS=30000).
#   scripts/perf-callgrind.sh     PERF_CG_DIR=/tmp/cg-after PERF_CG_BASE=/tmp/cg-before scripts/perf-callgrind.sh
set -eu
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$repo"
if [ -z "${PERF_CG_ONLY:-}" ]; then
	"$repo/scripts/install-btcd.sh"
	dir=${PERF_CG_DIR:-$(mktemp -d /tmp/perf-callgrind.XXXXXX)}
	mkdir -p "$dir"
	rm -f "$dir"/callgrind.out.*
	echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' + uncommitted changes'), $(date -u +%FT%TZ), dumps in $dir"
	PERF_CG_DIR="$dir" go test -tags perf -run '^TestPerfAddCallgrind$' -v -count 1 -timeout 60m ./e2e | tee "$dir/test.log"
	[ -z "${PERF_CG_NATIVE:-}" ] || exit 0
else
	dir=$PERF_CG_ONLY
fi
python3 - "$dir" "${PERF_CG_BASE:-}" "${PERF_CG_SHORT:-300}" "${PERF_CG_ADDS:-3000}" <<'EOF'
import bisect, glob, re, subprocess, sys
from collections import defaultdict

def symbols(binary):
    """teosd's text symbols, sorted by address (cgo's C code included)."""
    out = subprocess.run(["nm", "-n", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    addrs, names = [], []
    for line in out.splitlines():
        f = line.split(None, 2)
        if len(f) == 3 and f[1] in "tTwW":
            addrs.append(int(f[0], 16))
            names.append(f[2])
    return addrs, names

def parse(path, syms):
    """Self costs by function of one dump, per event (Ir; with PERF_CG_CACHE also the cache
    simulation's misses). Callgrind's function contexts follow calls and returns, which
    goroutine switches confuse, so each cost goes to the symbol holding its instruction
    address (the dumps come from --dump-instr=yes)."""
    addrs, names = syms
    events = ["Ir"]
    costs = defaultdict(lambda: [0] * len(events))
    pos, obj, fn, skip = 0, "", "", False
    names_ob, names_fn = {}, {}
    for line in open(path, errors="replace"):
        c = line[0]
        if c in "0123456789+-*":
            f = line.split()
            p = f[0]
            if p == "*":
                pass
            elif p[0] in "+-":
                pos += int(p, 16) if p[1:2] == "0x" else int(p)
            else:
                pos = int(p, 16) if p.startswith("0x") else int(p)
            if skip:  # the inclusive cost of a call
                skip = False
                continue
            key = pos if obj.endswith("/teosd") else (obj.rsplit("/", 1)[-1], fn)
            row = costs[key]
            for i, v in enumerate(f[1:len(events) + 1]):
                row[i] += int(v)
        elif line.startswith("events:"):
            events = line.split()[1:]
            costs = defaultdict(lambda: [0] * len(events))
        elif line.startswith("calls="):
            skip = True
        elif line.startswith("ob=") or line.startswith("fn="):
            m = re.match(r"(ob|fn)=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            table = names_ob if m.group(1) == "ob" else names_fn
            if m.group(3) is not None:
                table[m.group(2)] = m.group(3)
            if m.group(1) == "ob":
                obj = table[m.group(2)]
            else:
                fn = table[m.group(2)]
        elif line.startswith("cob=") or line.startswith("cfn=") or line.startswith("cfi=") or line.startswith("cfl="):
            m = re.match(r"(cob|cfn|cfi|cfl)=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m and m.group(3) is not None:  # a name defined in passing
                (names_ob if m.group(1) == "cob" else names_fn if m.group(1) == "cfn" else {})[m.group(2)] = m.group(3)
    out = {}
    for i, ev in enumerate(events):
        fns = defaultdict(int)
        for k, row in costs.items():
            if isinstance(k, tuple):
                fns[k[1] + " (" + k[0] + ")"] += row[i]
            else:
                j = bisect.bisect_right(addrs, k) - 1
                fns[names[j] if j >= 0 else hex(k)] += row[i]
        out[ev] = (sum(fns.values()), fns)
    return out

_dumps = {}

def dumps(d):
    """The short and long windows' self costs by event and function."""
    if d in _dumps:
        return _dumps[d]
    syms = symbols(d + "/teosd")
    out = {}
    for f in glob.glob(d + "/callgrind.out.*.*"):
        with open(f, errors="replace") as fh:
            name = re.search(r"Trigger: dump (\w+)", fh.read(4096))
        if name:
            out[name.group(1)] = parse(f, syms)
    _dumps[d] = out
    return out

# The collector's share moves by a few thousand instructions an add from run to run: a window
# holds a whole number of collections. The total without it is the steadier figure.
AREAS = [  # first match wins
    ("crypto (libsecp256k1, sha256, ripemd160, zbase32)", r"secp256k1|sha256|ripemd160|[Zz][Bb]ase32|wtcrypto|btcec|dcrec|crypto/"),
    ("bbolt", r"go\.etcd\.io/bbolt"),
    ("store (teos)", r"teos/internal/store"),
    (GC := "GC (mark, sweep, scan)", r"runtime\.(gc|.*[mM]ark|scanobject|scanblock|scanstack|greyobject|.*[sS]weep|.*[sS]pan[A-Z]|tryDefer|findObject|wbBuf|bulkBarrier|.*Barrier|typePointers|.*gcWork|.*[sS]can)"),
    ("allocation (malloc, memclr, growslice)", r"runtime\.(malloc|mallocgc|nextFree|.*mcache|.*mcentral|.*mheap|.*refill|memclr|growslice|newobject|makeslice|heapBits|.*HeapBits|.*allocSpan|.*alloc|rawstring|rawbyteslice|slicebytetostring|concatstring|makemap|newarray|.*[sS]tackalloc|.*nextSpan|deductAssist|.*Assist)"),
    ("memmove", r"runtime\.memmove"),
    ("maps (runtime)", r"internal/runtime/maps|runtime\.map|runtime\.memhash|aeshash"),
    ("stacks: growth, unwinding", r"runtime\.(pcvalue|step|copystack|adjust|findfunc|.*textAddr|.*getStackMap|.*unwinder|funcInfo|funcMaxSPDelta|newstack|morestack|pcdatavalue|readvarint|gentraceback|.*stackpool|stackalloc|stackfree|shrinkstack|resolveTypeOff|.*funcdata)"),
    ("scheduler, netpoll, locks, timers, other runtime", r"runtime\.|internal/runtime|sync\.|sync/atomic"),
    ("net/http", r"net/http|net/textproto|net/url"),
    ("gRPC", r"google\.golang\.org/grpc|golang\.org/x/net/http2"),
    ("protobuf", r"google\.golang\.org/protobuf|teos/proto"),
    ("serdejson, encoding/json, hex", r"serdejson|encoding/json|encoding/hex|strconv"),
    ("syscalls (user side), net, os, poll", r"syscall|internal/poll|^net\.|^os\.|clone|start_thread"),
    ("teos API edge (httpapi, addbatch, limits, teosd)", r"teos/internal/api/(httpapi|addbatch|limits|clientaddr|msglimit)|^main\."),
    ("teos core (grpcapi, watcher, gatekeeper, inspector)", r"teos/internal/(api/grpcapi|watcher|gatekeeper|inspector|hold|blockfirst)|teos/pkg/teos"),
    ("logging, metrics", r"log/slog|prometheus|teos/internal/metrics"),
]

def per_add(d, short, long_, ev="Ir"):
    w = dumps(d)
    if "short" not in w or "long" not in w:
        sys.exit(f"{d}: no short and long dumps")
    if ev not in w["short"]:
        return None
    (ts, fs), (tl, fl) = w["short"][ev], w["long"][ev]
    n = long_ - short
    fns = {k: (fl.get(k, 0) - fs.get(k, 0)) / n for k in set(fs) | set(fl)}
    return (tl - ts) / n, fns

def areas(fns):
    a = defaultdict(float)
    for fn, v in fns.items():
        for name, rx in AREAS:
            if re.search(rx, fn):
                a[name] += v
                break
        else:
            a["other"] += v
    return a

d, base, short, long_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
total, fns = per_add(d, short, long_)
a = areas(fns)
if base:
    btotal, bfns = per_add(base, short, long_)
    ba = areas(bfns)
    print(f"\ninstructions per add: {total:,.0f} (base {btotal:,.0f}, {100 * (total - btotal) / btotal:+.1f}%)")
    gc, bgc = a.get(GC, 0), ba.get(GC, 0)
    print(f"without the collector: {total - gc:,.0f} (base {btotal - bgc:,.0f}, {100 * (total - gc - btotal + bgc) / (btotal - bgc):+.1f}%)")
    print(f"\n{'self instructions per add by area':60} {'base':>10} {'this':>10} {'diff':>9}")
    for name, _ in sorted(a.items(), key=lambda kv: -kv[1]):
        print(f"{name:60} {ba.get(name, 0):10,.0f} {a[name]:10,.0f} {a[name] - ba.get(name, 0):+9,.0f}")
    print(f"\n{'functions that moved most (self per add)':90} {'base':>9} {'this':>9}")
    keys = sorted(set(fns) | set(bfns), key=lambda k: -abs(fns.get(k, 0) - bfns.get(k, 0)))
    for k in keys[:30]:
        print(f"{k[:90]:90} {bfns.get(k, 0):9,.0f} {fns.get(k, 0):9,.0f}")
else:
    print(f"\ninstructions per add: {total:,.0f}")
    print(f"without the collector: {total - a.get(GC, 0):,.0f}")
    print(f"\n{'self instructions per add by area':60} {'per add':>10} {'share':>7}")
    for name, v in sorted(a.items(), key=lambda kv: -kv[1]):
        print(f"{name:60} {v:10,.0f} {100 * v / total:6.1f}%")
    print(f"\n{'top functions (self instructions per add)':100} {'per add':>9}")
    for k, v in sorted(fns.items(), key=lambda kv: -kv[1])[:40]:
        print(f"{k[:100]:100} {v:9,.0f}")

# With PERF_CG_CACHE=1 the dumps also hold callgrind's cache simulation: misses per add by area
# (first-level data cache, and last level, i.e. memory), where instruction counts understate
# memory-bound code such as the collector or bbolt's node copies.
misses = [per_add(d, short, long_, ev) for ev in ("D1mr", "D1mw", "DLmr", "DLmw")]
if all(misses):
    d1 = areas({k: misses[0][1].get(k, 0) + misses[1][1].get(k, 0) for k in set(misses[0][1]) | set(misses[1][1])})
    ll = areas({k: misses[2][1].get(k, 0) + misses[3][1].get(k, 0) for k in set(misses[2][1]) | set(misses[3][1])})
    print(f"\ndata cache misses per add: first level {misses[0][0] + misses[1][0]:,.0f}, last level {misses[2][0] + misses[3][0]:,.0f}")
    print(f"{'by area':60} {'D1 misses':>10} {'LL misses':>10}")
    for name, v in sorted(d1.items(), key=lambda kv: -kv[1]):
        print(f"{name:60} {v:10,.0f} {ll.get(name, 0):10,.0f}")
EOF
