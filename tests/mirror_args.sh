#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: shmregd's etcd options take durations with units as its
# other timeouts do (plain numbers keep their unit: milliseconds for
# --etcd-timeout and --etcd-stall-timeout, seconds for --etcd-lease-ttl).
# Out-of-range or malformed values exit 2 naming the option, and nothing
# is served; a member that accepts and never answers makes a write fail
# with ETIMEDOUT after the given bound (300ms and plain 300 alike), not the
# 2 s default.  Needs no etcd: the "member" is a silent loopback listener.
. "$(dirname "${BASH_SOURCE[0]}")/mirror_common.sh"

# --- refused values ---
bad() { # OPTION VALUE
	local err rc
	err=$("$SHMREGD" -r X -s "$scratch/bad.sock" --etcd http://127.0.0.1:1 \
		--etcd-prefix /t/ "$1" "$2" 2>&1 >/dev/null)
	rc=$?
	[ "$rc" = 2 ] || fail "$1 $2: exit $rc, want 2"
	case $err in
	*"$1 $2: want "*) ;;
	*) fail "$1 $2: message '$err'" ;;
	esac
	[ ! -e "$scratch/bad.sock" ] || fail "$1 $2: a socket was made"
}
bad --etcd-timeout 0
bad --etcd-timeout 0.5ms
bad --etcd-timeout 2h
bad --etcd-timeout 5x
bad --etcd-stall-timeout -1s
bad --etcd-stall-timeout 3601s
bad --etcd-lease-ttl 1
bad --etcd-lease-ttl 1s
bad --etcd-lease-ttl 2500ms
bad --etcd-lease-ttl 25h
bad --etcd-lease-ttl 5ms

# --- accepted values: the write bound is the one given ---
# a "member" that accepts connections and never answers
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)' >"$scratch/port" &
pids+=("$!")
for _ in $(seq 100); do [ -s "$scratch/port" ] && break; sleep 0.05; done
port=$(cat "$scratch/port")
[ -n "$port" ] || { echo "FAIL: no listener"; exit 1; }

bound() { # TIMEOUT-ARG LEASE-ARG: a put fails ETIMEDOUT in 250..1500 ms
	local name=R$RANDOM dpid t0 ms err rc
	"$SHMREGD" -r "$name" -s "$scratch/$name.sock" \
		--etcd "http://127.0.0.1:$port" --etcd-prefix /t/ \
		--etcd-timeout "$1" --etcd-stall-timeout 2s \
		--etcd-lease-ttl "$2" 2>>"$scratch/$name.err" &
	dpid=$!
	pids+=("$dpid")
	for _ in $(seq 200); do
		"$SHMREGCTL" -r "$name" --socket "$scratch/$name.sock" ping \
			>/dev/null 2>&1 && break
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$dpid" 2>/dev/null ||
		{ fail "timeout $1, lease $2: shmregd did not start"; return; }
	t0=$(date +%s%N)
	err=$("$SHMREGCTL" -r "$name" --socket "$scratch/$name.sock" put k v 2>&1)
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$rc" != 0 ] || fail "timeout $1: a put succeeded without etcd"
	case $err in
	*"timed out"*) ;;
	*) fail "timeout $1: '$err', want ETIMEDOUT" ;;
	esac
	[ "$ms" -ge 250 ] && [ "$ms" -lt 1500 ] ||
		fail "timeout $1: the put failed after $ms ms"
	kill "$dpid"
	wait "$dpid" || fail "timeout $1: shmregd exited with $?"
}
bound 300ms 1m
bound 300 30
bound 0.3s 2s

if [ "$fails" != 0 ]; then
	tail -5 "$scratch"/*.err
	exit 1
fi
echo "PASS"
