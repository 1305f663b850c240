#!/bin/sh
# Installs Debian's PostgreSQL server for the pgstore conformance suite and the shared-database
# e2e tests, which start their own server (internal/pgtest: initdb + postgres as the postgres
# user, in a temp dir, on loopback). The package's own cluster is kept from starting.
set -eu
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	exit 0
fi
"$(dirname "$0")/install-debian.sh" postgresql postgresql.service
ls /usr/lib/postgresql/*/bin/initdb
