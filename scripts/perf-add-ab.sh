#!/bin/sh
# The durable add path of two teosd builds side by side (e2e TestPerfAddAB): PERF_BASE (a commit,
# default HEAD~1) and the working tree, alternating PERF_ROUNDS (4) rounds of teos-bench with
# PERF_CLIENTS (64) presigned clients for PERF_DURATION (8s), each on a fresh tower; prints
# adds/s, p50/p99 and teosd's CPU per add from /proc. PERF_ENV_VARIANTS adds runs of the working
# tree's teosd with measurement switches (e.g. "pipe:TEOSD_INTERNAL_HOP=pipe"); PERF_PROFILE_DIR
# saves CPU and allocation profiles of the working tree's teosd (its TEOSD_PPROF endpoint).
# teos-bench uses its lean HTTP client (PERF_BENCH_HTTP=net/http for Go's standard one) and
# presigns PERF_PRESIGN_RATE (15000) requests per second of the run.
#   PERF_BASE=abc1234 scripts/perf-add-ab.sh
set -eu
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$repo"
"$repo/scripts/install-btcd.sh"
base=${PERF_BASE:-HEAD~1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$base" | tar -x -C "$tmp"
(cd "$tmp" && go build -o "$tmp/teosd-base" ./cmd/teosd)
echo "base $(git rev-parse --short "$base"), working tree at $(git rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
PERF_TEOSD_BASE="$tmp/teosd-base" \
	go test -tags perf -run '^TestPerfAddAB$' -v -count 1 -timeout 60m ./e2e
