#!/usr/bin/env bash
# bbolt vs PostgreSQL in one run: durable add_appointment/s over HTTP with one and two teosd
# instances, disk per appointment (e2e TestPerfSharedPostgres), then a 4,000-locator block
# look-up at PERF_N stored appointments on both engines (pgstore TestPerfBlockLookup).
# Needs Debian's postgresql package and btcd (BTCD or make btcd).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
go test -tags perf -run '^TestPerfSharedPostgres$' -v -count 1 -timeout 30m ./e2e
PERF_N=${PERF_N:-1000000} go test -tags perf -run '^TestPerfBlockLookup$' -v -count 1 -timeout 60m ./internal/store/pgstore
