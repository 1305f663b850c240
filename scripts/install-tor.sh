#!/bin/sh
# Installs Debian's tor for the Tor tests (internal/tor, e2e/tor_test.go), which start their
# own tor with DisableNetwork 1 (or a private network on loopback). The package's own service
# would join the Tor network, so it is kept from starting.
set -eu
if command -v tor >/dev/null 2>&1 || [ -x /usr/sbin/tor ]; then
	exit 0
fi
"$(dirname "$0")/install-debian.sh" tor tor.service tor@default.service
tor --version | head -n 1
