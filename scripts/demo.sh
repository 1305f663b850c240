#!/usr/bin/env bash
# make demo: one breach from start to finish on a private regtest chain, printed as a numbered
# story. The demo is e2e's TestDemo, so every step it tells is also checked. The story goes to
# this terminal through fd 3; the test runner's own output goes to a file, shown only if a step
# fails. btcd and teosd die with the test binary (Pdeathsig), so Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
scripts/install-btcd.sh
mkdir -p .bin
echo "Building teosd, teos-client and the demo..."
"$GO" test -c -o .bin/e2e.test ./e2e
log=$(mktemp)
trap 'rm -f "$log"' EXIT
interrupted=
trap 'interrupted=1' INT TERM
if ! (cd e2e && exec ../.bin/e2e.test -test.run '^TestDemo$' -test.count=1 -demo.story /dev/fd/3) \
	3>&1 >"$log" 2>&1; then
	if [ -n "$interrupted" ]; then
		echo "Interrupted: btcd and teosd are stopped."
		exit 130
	fi
	echo "The demo failed; the test's output:" >&2
	cat "$log" >&2
	exit 1
fi
