#!/bin/sh
# Installs Debian's PostgreSQL server for the pgstore conformance suite and the shared-database
# e2e tests, which start their own server (internal/pgtest: initdb + postgres as the postgres
# user, in a temp dir, on loopback). The package's own cluster service is kept from starting.
set -eu

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
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
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
if [ -n "$added" ]; then
	$sudo rm -f "$policy"
fi
if command -v systemctl >/dev/null 2>&1; then
	$sudo systemctl disable --now postgresql.service >/dev/null 2>&1 || true
fi
ls /usr/lib/postgresql/*/bin/initdb
