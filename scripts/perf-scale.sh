#!/bin/sh
# Store scale: fills a bbolt file with PERF_N (1000000) appointments through store.BulkLoad
# (reused on later runs), then in a fresh process measures open time, heap, RSS and the
# watcher's time per 4,000-transaction block, without and with matches. For each, three runs
# back to back, the page cache dropped before each: with the store's locator filter built from
# the index at open (which reads the whole index), with the filter loaded from the file the
# previous run saved at Close (the index stays cold), and without the filter (the baseline;
# its writes make the next run rebuild the filter). 10M takes ~12 min and ~6 GB of disk for the first fill on an
# idle machine.
#   scripts/perf-scale.sh           PERF_N=10000000 scripts/perf-scale.sh
set -eu
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$repo"
n=${PERF_N:-1000000}
db=${PERF_DB:-${TMPDIR:-/tmp}/teos-scale-$n.db}
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
go build -o "${TMPDIR:-/tmp}/teos-scale.$$" ./cmd/teos-scale
bin="${TMPDIR:-/tmp}/teos-scale.$$"
trap 'rm -f "$bin"' EXIT
for matches in 0 10; do
	for filter in true true false; do
		echo "--- matches=$matches locfilter=$filter, load average $(cut -d' ' -f1-3 /proc/loadavg)"
		"$bin" -n "$n" -db "$db" -blocks 20 -txs 4000 -matches "$matches" -locfilter="$filter"
	done
done
