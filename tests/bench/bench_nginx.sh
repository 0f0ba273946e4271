#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_nginx.sh - resty.shmreg's get against ngx.shared.DICT:get inside
# the same nginx (Debian's, 2 workers), driven by wrk.
#
# N keys of 16 B with 64 B values (bench_nginx_fill fills the registry,
# init_by_lua fills a lua_shared_dict with the same entries).  Each HTTP
# request runs a loop of LOOP gets (bench_nginx.lua), so HTTP costs little
# per get; /noop runs the same loop without a get and measures what the
# loop and HTTP cost alone.  For each peer and each wrk connection count
# (1: one busy worker; 8: both workers busy, reuseport spreading the
# connections), it measures the workers' CPU time from /proc/PID/stat
# (utime + stime) and the wall time, per get; each run measures every
# peer, interleaved, and the table reports medians over the runs and the
# ratios dict/shmreg and dict/cached of those medians.
#
# Every get returns a new Lua string (100 k distinct values), so part of
# each peer's cost is the Lua VM's: the string and its share of garbage
# collection, which grows with the live heap (here the 100 k key strings).
# /lookup measures shmreg's lookup alone (no string), and --gc-pause sets
# the collector's pause (LuaJIT's default, 200, unless given) to show how
# much of both peers' cost is collection.  /cached is resty.shmreg with its
# value cache on, large enough for every key: after the first get of a
# key, a get is the lookup (for the entry's mod_rev) and the string made
# before, so it makes no string and no garbage.  It runs in a second nginx
# (same template, same registry), because strings are interned per VM: a
# cache holding every value would spare the other peers' gets in its VM
# the allocation they pay anywhere else.  A warm-up second per peer at 16
# connections, not recorded, fills both workers' caches first.
#
# Usage: bench_nginx [--runs R] [--duration S] [--keys N] [--loop L]
#                    [--gc-pause P] [--quick]
#   defaults: 5 runs of 5 s per peer and connection count, 100000 keys,
#   loops of 1000.  --quick: 1 run of 1 s over 10000 keys (the ctest: it
#   checks that everything runs and every value is right; its figures
#   mean nothing).
# Env: SHMREG_SOURCE_DIR, SHMREG_BINARY_DIR (set by the build tree's
# bench_nginx wrapper).  Exit 0, 1 when a value was wrong or a server
# failed, 77 when nginx, its Lua module or wrk is missing.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SHMREG_SOURCE_DIR:=$(cd "$here/../.." && pwd)}"
: "${SHMREG_BINARY_DIR:?SHMREG_BINARY_DIR: the build tree}"

runs=5 dur=5 nkeys=100000 loop=1000 gcpause=200
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--duration) dur=$2; shift 2 ;;
	--keys) nkeys=$2; shift 2 ;;
	--loop) loop=$2; shift 2 ;;
	--gc-pause) gcpause=$2; shift 2 ;;
	--quick) runs=1 dur=1 nkeys=10000; shift ;;
	-h|--help) sed -n '3,39p' "$0"; exit 0 ;;
	*) echo "bench_nginx: unknown argument $1" >&2; exit 2 ;;
	esac
done

for v in "$runs" "$dur" "$nkeys" "$loop" "$gcpause"; do
	case $v in
	''|*[!0-9]*|0) echo "bench_nginx: '$v' is not a positive integer" >&2; exit 2 ;;
	esac
done

fill=$SHMREG_BINARY_DIR/tests/bench/nginx_bench_fill
[ -x "$fill" ] || { echo "bench_nginx: $fill not built" >&2; exit 1; }
command -v wrk >/dev/null || { echo "SKIP: no wrk (apt-get install wrk)"; exit 77; }
# servers.sh's nginx_start/nginx_stop and its EXIT trap (no shmregd here)
# shellcheck source=../lua/servers.sh
. "$SHMREG_SOURCE_DIR/tests/lua/servers.sh"
lua_skip_checks

work=$(mktemp -d /dev/shm/shmreg-bench-nginx.XXXXXX)
chmod 0755 "$work"
trap '_servers_cleanup; rm -rf "$work"' EXIT
cd "$work" || exit 1
"$fill" "$work/shmreg.bench" "$nkeys" || exit 1

export LD_LIBRARY_PATH=$LUA_BUILD_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
NGX_SUBST_LUADIR=$SHMREG_SOURCE_DIR/lua
NGX_SUBST_BENCHDIR=$SHMREG_SOURCE_DIR/tests/bench
NGX_SUBST_REGISTRY=$work/shmreg.bench
NGX_SUBST_NKEYS=$nkeys
NGX_SUBST_GCPAUSE=$gcpause
# nginx "plain": /noop, /lookup, /shmreg, /dict; nginx "cache": /cached
# (and its own /noop and /lookup), a VM whose value cache holds every key
# (see bench_nginx.lua's init for why it is another nginx).  Only one is
# driven at a time; the other waits in epoll.
declare -A ngx_port ngx_workers ngx_pid
for inst in plain cache; do
	if [ $inst = plain ]; then
		NGX_SUBST_CACHE=0
		NGX_SUBST_DICTSIZE=$((nkeys * 512 / 1024 / 1024 + 8))m
	else
		NGX_SUBST_CACHE=$nkeys
		NGX_SUBST_DICTSIZE=1m
	fi
	nginx_start "$SHMREG_SOURCE_DIR/tests/bench/bench_nginx.conf.in" \
		"nginx-$inst"
	ngx_port[$inst]=$NGX_PORT
	ngx_pid[$inst]=$NGX_PID
	ngx_workers[$inst]=$(pgrep -P "$NGX_PID" | sort -n | paste -sd' ')
done
tck=$(getconf CLK_TCK)

cpu_ticks() { # PID: utime + stime, in clock ticks (fields 14 and 15)
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# measure PEER CONNS [SECONDS]: one wrk run; appends "PEER CONNS cpu_ns
# wall_ns share" to results (per get: workers' CPU, wall time; share:
# each worker's part of the CPU)
measure() {
	local peer=$1 conns=$2 length=${3:-$dur} threads=1 w out reqs secs
	local inst=plain workers
	local -A t0
	[ "$peer" = cached ] && inst=cache
	workers=${ngx_workers[$inst]}
	[ "$conns" -gt 1 ] && threads=2
	for w in $workers; do t0[$w]=$(cpu_ticks "$w"); done
	out=$(wrk -t "$threads" -c "$conns" -d "${length}s" --timeout 10s \
		"http://127.0.0.1:${ngx_port[$inst]}/$peer?n=$loop" 2>&1) || {
		echo "bench_nginx: wrk failed: $out" >&2; exit 1; }
	if echo "$out" | grep -q 'Non-2xx'; then
		echo "bench_nginx: /$peer answered errors (wrong values?):" >&2
		echo "$out" >&2
		curl -sS --max-time 5 \
			"http://127.0.0.1:${ngx_port[$inst]}/$peer?n=$loop" >&2
		exit 1
	fi
	read -r reqs secs < <(echo "$out" |
		sed -n 's/^ *\([0-9]*\) requests in \([0-9.]*\)\(m*s\).*/\1 \2 \3/p' |
		awk '{ print $1, ($3 == "ms" ? $2 / 1000 : $2) }')
	[ -n "$reqs" ] && [ "$reqs" -gt 0 ] ||
		{ echo "bench_nginx: no requests: $out" >&2; exit 1; }
	local dt=() total=0 d
	for w in $workers; do
		d=$(( $(cpu_ticks "$w") - t0[$w] ))
		dt+=("$d")
		total=$((total + d))
	done
	awk -v p="$peer" -v c="$conns" -v r="$reqs" -v s="$secs" \
	    -v l="$loop" -v t="$total" -v hz="$tck" -v parts="${dt[*]}" '
	BEGIN {
		gets = r * l
		n = split(parts, a, " ")
		share = ""
		for (i = 1; i <= n; i++)
			share = share sprintf("%s%.0f%%", i > 1 ? "/" : "",
				t ? 100 * a[i] / t : 0)
		printf "%s %s %.1f %.1f %s\n", p, c, t / hz * 1e9 / gets,
			s * 1e9 / gets, share
	}' >>"$work/results"
	tail -1 "$work/results" | awk '{ printf "  %-6s %d conn: %7.1f ns CPU/get %7.1f ns wall/get  workers %s\n", $1, $2, $3, $4, $5 }'
}

echo "# bench_nginx: $nkeys keys (16 B, 64 B values), loops of $loop gets per request, $runs runs of ${dur}s per peer, Lua GC pause $gcpause"
echo "# nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), workers ${ngx_workers[plain]} (and ${ngx_workers[cache]} for /cached), wrk $(wrk -v 2>&1 | sed -n '1s/^wrk \([^ ]*\).*/\1/p'), $(nproc) CPUs"
# Warm-up, not recorded: every peer at 16 connections for a second, so
# that both workers of the cache nginx have filled their caches (100 k
# misses each) and every peer's traces are compiled before the runs.
for peer in noop lookup shmreg cached dict; do
	measure "$peer" 16 1 >/dev/null
done
: >"$work/results"
for r in $(seq "$runs"); do
	echo "# run $r of $runs ($(date -u +%H:%M:%SZ), loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
	for conns in 1 8; do
		for peer in noop lookup shmreg cached dict; do
			measure "$peer" "$conns"
		done
	done
done
for inst in plain cache; do
	if grep -E '\[(error|crit|alert|emerg)\]' \
		"$work/nginx-$inst/logs/error.log"; then
		echo "bench_nginx: nginx logged errors" >&2
		exit 1
	fi
done
for inst in plain cache; do nginx_stop "${ngx_pid[$inst]}"; done

# medians over the runs and the ratios
python3 - "$work/results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
peers = ("noop", "lookup", "shmreg", "cached", "dict")
med = {}
for conns in ("1", "8"):
    for peer in peers:
        sel = [r for r in rows if r[0] == peer and r[1] == conns]
        med[peer, conns] = (statistics.median(float(r[2]) for r in sel),
                            statistics.median(float(r[3]) for r in sel))
print()
print("| connections | peer | CPU ns/get | wall ns/get | CPU ns/get net of /noop |")
print("|---|---|---:|---:|---:|")
for conns in ("1", "8"):
    for peer in peers:
        cpu, wall = med[peer, conns]
        net = cpu - med["noop", conns][0]
        print(f"| {conns} | {peer} | {cpu:.1f} | {wall:.1f} | "
              f"{'' if peer == 'noop' else f'{net:.1f}'} |")
print()
print("| connections | peer | dict/peer CPU | dict/peer wall | dict/peer CPU net of /noop | target |")
print("|---|---|---:|---:|---:|---|")
key = None
for conns, target in (("1", ">= 3x (one busy worker)"),
                      ("8", ">= 6x (two busy workers)")):
    d, n = med["dict", conns], med["noop", conns]
    for peer in ("shmreg", "cached"):
        s = med[peer, conns]
        rc, rw = d[0] / s[0], d[1] / s[1]
        net_s, net_d = s[0] - n[0], d[0] - n[0]
        rn = net_d / net_s if net_s > 0 else float("nan")
        print(f"| {conns} | {peer} | {rc:.2f}x | {rw:.2f}x | {rn:.2f}x | {target} |")
        if key is None and peer == "cached":
            key = rc
print()
print("# the headline: dict/cached CPU per get at 1 connection")
print(f"# key: {key:.2f}")
EOF
