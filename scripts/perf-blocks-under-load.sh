#!/bin/sh
# Blocks arriving under load: PERF_CLIENTS (100) clients add appointments for PERF_DURATION
# (30s) while a block is mined every second (some with breaches). Block processing times come
# from teosd's teos_block_processing_seconds histogram (metrics_bind), compared with an idle
# baseline taken in the same run.
#   scripts/perf-blocks-under-load.sh
set -eu
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$repo"
"$repo/scripts/install-btcd.sh"
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
go test -tags perf -run '^TestPerfBlocksUnderLoad$' -v -count 1 -timeout 20m ./e2e
