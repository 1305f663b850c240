#!/bin/sh
# Runs every fuzz target in the module for FUZZTIME each (default 5s, what CI runs).
# `go test -fuzz` takes one target per package per invocation, so they run one after another.
# Longer runs: FUZZTIME=10m scripts/fuzz.sh, or one target:
#   go test -run '^$' -fuzz '^FuzzResponse$' -fuzztime 1h ./internal/bitcoind/
# A failing input is saved under <pkg>/testdata/fuzz/<Target>/; commit it as a regression seed.
set -eu

FUZZTIME=${FUZZTIME:-5s}
GO=${GO:-go}
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$repo"

# "<dir> <Target>" for every func FuzzXxx(f *testing.F) in a _test.go file.
targets=$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . |
	sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+).*#\1 \2#' | sort)

status=0
echo "$targets" | while read -r dir target; do
	[ -n "$target" ] || continue
	start=$(date +%s)
	ok=false
	for try in 1 2; do
		if $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$dir" >/tmp/teos-fuzz.$$ 2>&1; then
			ok=true
			break
		fi
		# The Go fuzzer sometimes reports its own time limit as "context deadline exceeded"
		# with no failing input; only that case is retried.
		if grep -q 'Failing input written' /tmp/teos-fuzz.$$ || ! grep -q 'context deadline exceeded' /tmp/teos-fuzz.$$; then
			break
		fi
		echo "retry $target ($dir): the fuzzer stopped on its own deadline without a failing input"
	done
	if ! $ok; then
		cat /tmp/teos-fuzz.$$
		rm -f /tmp/teos-fuzz.$$
		echo "FAIL $target ($dir)"
		exit 1
	fi
	execs=$(grep -Eo 'execs: [0-9]+' /tmp/teos-fuzz.$$ | tail -n 1 | cut -d' ' -f2)
	rm -f /tmp/teos-fuzz.$$
	echo "ok   $target ($dir) ${FUZZTIME}, ${execs:-?} execs, $(($(date +%s) - start))s wall"
done || status=1
exit $status
