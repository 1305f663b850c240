#!/bin/sh
# Installs Debian's tor for the Tor tests (internal/tor, e2e/tor_test.go), which start their
# own tor with DisableNetwork 1. The package's own service would join the Tor network, so it
# is kept from starting (policy-rc.d) and disabled.
set -eu

if command -v tor >/dev/null 2>&1 || [ -x /usr/sbin/tor ]; then
	exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
policy=/usr/sbin/policy-rc.d
added=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 0755 "$policy"
	added=1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends tor >/dev/null
if [ -n "$added" ]; then
	$sudo rm -f "$policy"
fi
if command -v systemctl >/dev/null 2>&1; then
	$sudo systemctl disable --now tor.service tor@default.service >/dev/null 2>&1 || true
fi
tor --version | head -n 1
