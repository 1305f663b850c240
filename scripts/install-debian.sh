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
policy=${TEOS_POLICY_RC_D:-/usr/sbin/policy-rc.d} # the variable is the tests' hook
if [ ! -e "$policy" ]; then
	# Removed however the script ends (apt-get failing ends it through set -e): left behind,
	# it would keep the services of every package installed later from starting.
	trap '$sudo rm -f "$policy"' EXIT
	trap 'exit 130' INT TERM
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 0755 "$policy"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
if command -v systemctl >/dev/null 2>&1; then
	for svc in "$@"; do
		$sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
	done
fi
