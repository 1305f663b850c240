#!/bin/sh
# Checks contrib/init/teosd.service with `systemd-analyze verify`. Without systemd-analyze it
# skips (exit 0, with a message), unless CI=true: then it installs systemd with apt-get first.
# verify exits 0 on unknown keys and unparsable values, so any output counts as a failure.
set -eu

repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
unit="$repo/contrib/init/teosd.service"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	if [ "${CI:-}" != "true" ]; then
		echo "verify-unit: systemd-analyze not found, skipping (CI=true installs systemd with apt-get)"
		exit 0
	fi
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		sudo="sudo"
	fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify wants ExecStart's binary to exist: point it at a stand-in, keeping the arguments.
printf '#!/bin/sh\nexit 0\n' >"$tmp/teosd"
chmod 0755 "$tmp/teosd"
grep -q '^ExecStart=/usr/local/bin/teosd ' "$unit" || {
	echo "verify-unit: $unit has no 'ExecStart=/usr/local/bin/teosd ...' line"
	exit 1
}
sed "s|^ExecStart=/usr/local/bin/teosd |ExecStart=$tmp/teosd |" "$unit" >"$tmp/teosd.service"

if ! out=$(systemd-analyze verify "$tmp/teosd.service" 2>&1); then
	echo "$out"
	echo "verify-unit: $unit: systemd-analyze verify failed"
	exit 1
fi
if [ -n "$out" ]; then
	echo "$out"
	echo "verify-unit: $unit: systemd-analyze verify printed warnings"
	exit 1
fi
echo "verify-unit: $unit OK"
