#!/bin/sh
# Installs the pinned lnd and lncli into <repo>/.bin for the end-to-end tests with real lnd nodes.
# `go install lnd@version` is refused because lnd's go.mod has replace directives, so this downloads
# the module from the Go module proxy and builds inside a writable copy of it, where its go.mod (and
# its replaces) is the main module. Safe to run repeatedly and concurrently; skips when the pinned
# version is already there.
set -eu

LND_VERSION=v0.21.3-beta

repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
bin="$repo/.bin"

have_pinned() {
	[ -x "$bin/lnd" ] && [ -x "$bin/lncli" ] || return 1
	# Built from a module copy, the build info says (devel); lnd's own version constants do not.
	"$bin/lnd" --version 2>/dev/null | grep -q "version ${LND_VERSION#v} " || return 1
	"$bin/lncli" --version 2>/dev/null | grep -q "version ${LND_VERSION#v} " || return 1
}

if have_pinned; then
	exit 0
fi

mkdir -p "$bin"

if command -v flock >/dev/null 2>&1; then
	exec 9>"$bin/.install-lnd.lock"
	flock 9
	if have_pinned; then
		exit 0
	fi
fi

echo "installing lnd and lncli $LND_VERSION into $bin (takes minutes)" >&2
dir=$(go mod download -json "github.com/lightningnetwork/lnd@$LND_VERSION" |
	sed -n 's/^[[:space:]]*"Dir":[[:space:]]*"\(.*\)",*$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
	echo "install-lnd: go mod download gave no module directory" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cp -R "$dir" "$tmp/lnd"
chmod -R u+w "$tmp/lnd"

rm -f "$bin/lnd" "$bin/lncli"
# Default build tags (no optional sub-servers): the tests need only lnd's core RPCs and wtclient.
# nice: this is minutes of both cores on a shared machine.
(cd "$tmp/lnd" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$bin" nice go install -trimpath \
	-ldflags "-s -w -X github.com/lightningnetwork/lnd/build.Commit=$LND_VERSION" \
	./cmd/lnd ./cmd/lncli)

if ! have_pinned; then
	echo "install-lnd: $bin/lnd does not report module version $LND_VERSION after install" >&2
	exit 1
fi
