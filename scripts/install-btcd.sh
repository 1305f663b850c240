#!/bin/sh
# Installs the pinned btcd node and btcctl into <repo>/.bin for the end-to-end tests.
# btcd gets its own module graph through `go install pkg@version`: pinning the daemon in our
# go.mod breaks the build (docs/BTCD.md section 1). Safe to run repeatedly and concurrently.
set -eu

BTCD_VERSION=v0.26.2

repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
bin="$repo/.bin"

have_pinned() {
	[ -x "$bin/btcd" ] && [ -x "$bin/btcctl" ] || return 1
	"$bin/btcd" --version 2>/dev/null | grep -q "version ${BTCD_VERSION#v}-" || return 1
	# btcctl prints a stale hard-coded version, so read the module version from its build info.
	go version -m "$bin/btcctl" 2>/dev/null |
		grep -Eq "^[[:space:]]*mod[[:space:]]+github.com/btcsuite/btcd[[:space:]]+$BTCD_VERSION([[:space:]]|\$)"
}

if have_pinned; then
	exit 0
fi

mkdir -p "$bin"

# Test packages run in parallel and may all try to install at once; let one do it.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$bin/.install-btcd.lock"
	flock 9
	if have_pinned; then
		exit 0
	fi
fi

echo "installing btcd and btcctl $BTCD_VERSION into $bin" >&2
# go install refuses to overwrite a file it does not recognise as a Go binary.
rm -f "$bin/btcd" "$bin/btcctl"
GOBIN="$bin" go install \
	"github.com/btcsuite/btcd@$BTCD_VERSION" \
	"github.com/btcsuite/btcd/cmd/btcctl@$BTCD_VERSION"

if ! have_pinned; then
	echo "install-btcd: $bin/btcd does not report version $BTCD_VERSION after install" >&2
	exit 1
fi
