#!/bin/sh
# install-debian.sh PACKAGE SERVICE...: installs a Debian package whose program the tests start
# themselves (on loopback, in a temp dir), keeping the package's own services from starting
# (policy-rc.d during the install, then disabled): a packaged tor would join the Tor network.
# Needs root or sudo.
set -eu
pkg=$1
shift
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
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
if [ -n "$added" ]; then
	$sudo rm -f "$policy"
fi
if command -v systemctl >/dev/null 2>&1; then
	for svc in "$@"; do
		$sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
	done
fi
