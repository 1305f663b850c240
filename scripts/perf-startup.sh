#!/bin/sh
# teosd start-up with a big store: fills a fixture with PERF_N (1000000) appointments through
# cmd/teos-scale (reused on later runs), starts a regtest btcd with 110 blocks, then starts
# teosd five times on a copy of the fixture: the first start (tower key and admin certificates
# created) and a restart, both with the file dropped from the page cache (cold), then three
# restarts with it cached (warm). Each start prints the time from launch to the API answering
# /ping and to the log's "tower key loaded", "bootstrap completed" and "tower ready", teosd's
# RSS 1 s later, the Go heap from /metrics, and how long that scrape took. 10M needs ~12 GB of
# disk (fixture + copy) and ~15 min to fill and compact.
#   scripts/perf-startup.sh         PERF_N=10000000 scripts/perf-startup.sh
# PERF_DIR (default ${TMPDIR:-/tmp}/teos-perf-startup-$PERF_N) holds everything; PERF_CLEAN=1
# deletes it at the end (the fixture included).
set -eu
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$repo"
n=${PERF_N:-1000000}
dir=${PERF_DIR:-${TMPDIR:-/tmp}/teos-perf-startup-$n}
fixture=$dir/fixture.db
db=$dir/tower/regtest/teos.db
mkdir -p "$dir/bin" "$dir/btcd"

"$repo/scripts/install-btcd.sh"
go build -o "$dir/bin/teosd" ./cmd/teosd
go build -o "$dir/bin/teos-scale" ./cmd/teos-scale
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"

# The fill reuses a matching fixture (teos-scale's .fixture.json). teosd gets a copy: btcd
# wipes its regtest chain at every start, so the last block a tower stored in an earlier run
# would not exist any more.
"$dir/bin/teos-scale" -n "$n" -db "$fixture" -phase fill
rm -rf "$dir/tower"
mkdir -p "$dir/tower/regtest"
cp "$fixture" "$db"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
btc_port=$(free_port)
api_port=$(free_port)
internal_port=$(free_port)
rpc_port=$(free_port)
metrics_port=$(free_port)
user=perf
pass=perf-$$

btcd_pid=
teosd_pid=
cleanup() {
	[ -n "$teosd_pid" ] && kill "$teosd_pid" 2>/dev/null || true
	[ -n "$btcd_pid" ] && kill "$btcd_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	if [ "${PERF_CLEAN:-0}" = 1 ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT INT TERM

: >"$dir/btcd/empty.conf"
"$repo/.bin/btcd" --configfile="$dir/btcd/empty.conf" --regtest --datadir="$dir/btcd/data" \
	--logdir="$dir/btcd/logs" --rpclisten="127.0.0.1:$btc_port" --rpcuser="$user" --rpcpass="$pass" \
	--notls --nolisten --txindex --utxocachemaxsize=8 --nostalldetect \
	--miningaddr=ms3ng1kyrvqF78tKjfHB7MiWz427KmhK4E >"$dir/btcd/out.log" 2>&1 &
btcd_pid=$!
ctl() { "$repo/.bin/btcctl" -C "$dir/btcd/empty.conf" --regtest --notls -s "127.0.0.1:$btc_port" -u "$user" -P "$pass" "$@"; }
i=0
until ctl getblockcount >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 300 ] || { echo "btcd did not start" >&2; tail "$dir/btcd/out.log" >&2; exit 1; }
	sleep 0.1
done
ctl generate 110 >/dev/null
echo "btcd at height $(ctl getblockcount)"

cat >"$dir/tower/teos.toml" <<EOF
api_bind = "127.0.0.1"
api_port = $api_port
internal_api_bind = "127.0.0.1"
internal_api_port = $internal_port
rpc_bind = "127.0.0.1"
rpc_port = $rpc_port
metrics_bind = "127.0.0.1:$metrics_port"
EOF

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# log_ms MESSAGE: the slog time of the first line holding msg=MESSAGE, in ms since the epoch.
log_ms() {
	t=$(grep -m1 "msg=\"\\{0,1\\}$1" "$dir/teosd.log" | sed -n 's/^time=\([^ ]*\).*/\1/p')
	[ -n "$t" ] && echo $(($(date -d "$t" +%s%N) / 1000000)) || echo "?"
}
status_kib() { sed -n "s/^$1:[[:space:]]*\\([0-9]*\\) kB/\\1/p" "/proc/$teosd_pid/status"; }

start_once() { # start_once LABEL DROP_CACHE
	if [ "$2" = 1 ]; then
		sync
		dd if="$db" iflag=nocache count=0 status=none # posix_fadvise(DONTNEED) on the whole file
	fi
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	t0=$(now_ms)
	"$dir/bin/teosd" --datadir="$dir/tower" --btcnetwork=regtest --btcrpcuser="$user" \
		--btcrpcpassword="$pass" --btcrpcport="$btc_port" >"$dir/teosd.out" 2>"$dir/teosd.log" &
	teosd_pid=$!
	until curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$api_port/ping"; do
		kill -0 "$teosd_pid" 2>/dev/null || { echo "teosd exited" >&2; cat "$dir/teosd.log" >&2; exit 1; }
		sleep 0.005
	done
	t_ping=$(now_ms)
	t_key=$(log_ms "tower key loaded")
	t_boot=$(log_ms "bootstrap completed")
	t_ready=$(log_ms "tower ready")
	sleep 1 # let the start-up's garbage be collected before reading memory
	rss=$(status_kib VmRSS)
	anon=$(status_kib RssAnon)
	file=$(status_kib RssFile)
	ts=$(now_ms)
	heap=$(curl -fs --max-time 60 "http://127.0.0.1:$metrics_port/metrics" | sed -n 's/^go_memstats_heap_inuse_bytes \(.*\)/\1/p')
	scrape=$(($(now_ms) - ts))
	rel() { case $1 in "?") echo "?" ;; *) echo $(($1 - t0)) ;; esac; }
	printf '%s (load %s): /ping %d ms, key loaded %s ms, bootstrap completed %s ms, tower ready %s ms; RSS %d MiB (anon %d MiB, file %d MiB); heap in use %s MiB; /metrics scrape %d ms\n' \
		"$1" "$load" $((t_ping - t0)) "$(rel "$t_key")" "$(rel "$t_boot")" "$(rel "$t_ready")" \
		$((rss / 1024)) $((anon / 1024)) $((file / 1024)) \
		"$(awk -v b="${heap:-0}" 'BEGIN { printf "%.1f", b / 1048576 }')" "$scrape"
	kill "$teosd_pid"
	wait "$teosd_pid" || true
	teosd_pid=
}

start_once "first start, cold" 1
start_once "restart, cold" 1
start_once "restart, warm" 0
start_once "restart, warm" 0
start_once "restart, warm" 0
echo "data file $(du -m --apparent-size "$db" | cut -f1) MiB apparent, $(du -m "$db" | cut -f1) MiB on disk, $n appointments"
