#!/bin/sh
# Catching up on missed blocks: fills a teosd with PERF_FILL (20000) appointments plus
# PERF_BREACHES (10) real breaches, stops it, mines PERF_MISSED (1000) blocks with the breaches
# spread among them, restarts it and times the restart until the API answers (teosd opens the
# API after catching up), then checks every breach was answered.
#   scripts/perf-catchup.sh         PERF_MISSED=100 scripts/perf-catchup.sh
set -eu
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$repo"
"$repo/scripts/install-btcd.sh"
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
go test -tags perf -run '^TestPerfCatchup$' -v -count 1 -timeout 30m ./e2e
