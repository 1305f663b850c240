#!/bin/sh
# add_appointment over HTTP against a real, durable teosd (fsync on) on loopback, with its own
# regtest btcd: teos-bench at PERF_CLIENTS (64) clients for PERF_DURATION (20s), presigned,
# signed inline, and a mixed load. teos-bench times the crypto bound (one recovery + one
# signature) in the same process before and after the load; the go benchmark below gives the
# in-process figure for comparison.
#   scripts/perf-http.sh            PERF_CLIENTS=128 PERF_DURATION=60s scripts/perf-http.sh
set -eu
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$repo"
"$repo/scripts/install-btcd.sh"
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
go test -run '^$' -bench '^Benchmark(CryptoBound|AddAppointmentHTTP)$' -benchtime 2s -count 1 ./internal/api
go test -tags perf -run '^TestPerfHTTP$' -v -count 1 -timeout 20m ./e2e
