#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: owners across the cluster.  A pid-owned put through a
# mirror is an etcd key under one lease per owner; when the owner process
# is killed the daemon revokes the lease and the keys vanish from etcd and
# from both mirrors.  A connection-owned (--ephemeral) key goes when its
# connection closes.  When the daemon itself is killed -9, its owners' keys
# vanish after the lease TTL although the owner still runs.  A daemon
# restarted after that adopts the leases of owners that still run (their
# keys stay past the TTL, and go when the owner exits) and revokes those
# of owners that exited meanwhile.  Skips without etcd.
. "$(dirname "$0")/mirror_lib.sh"

start_cluster
start_mirror A "$(ep 1),$(ep 2),$(ep 3)" --etcd-lease-ttl 2
start_mirror B "$(ep 3),$(ep 2),$(ep 1)"

# wait (deadline in tenths of a second) until etcd has no /t/KEY
etcd_gone() { # KEY TENTHS
	for _ in $(seq "$2"); do
		[ -z "$(ectl get "/t/$1")" ] && return 0
		sleep 0.1
	done
	return 1
}
lease_of() { # KEY: the etcd lease id of /t/KEY (0: none)
	ectl get "/t/$1" -w json | python3 -c '
import json, sys
kvs = json.load(sys.stdin).get("kvs", [])
print(kvs[0].get("lease", 0) if kvs else "absent")'
}

# --- a pid owner ---
sleep 300 &
owner=$!
pids+=("$owner")
sctl A put o1 v1 --owner "$owner" >/dev/null || fail "owned put o1"
sctl A put o2 v2 --owner "$owner" >/dev/null || fail "owned put o2"
sctl A put plain p >/dev/null || fail "plain put"
l1=$(lease_of o1)
l2=$(lease_of o2)
[ "$l1" != 0 ] && [ "$l1" != absent ] || fail "o1 has no lease in etcd ($l1)"
[ "$l1" = "$l2" ] || fail "one owner, two leases ($l1, $l2)"
[ "$(lease_of plain)" = 0 ] || fail "a plain key got a lease"
[ "$("$SHMREGCTL" -r B await o2 --timeout 5s)" = v2 ] || fail "B: await o2"
kill -9 "$owner"; wait "$owner" 2>/dev/null
etcd_gone o1 50 && etcd_gone o2 50 || fail "owner killed: keys stay in etcd"
converge A "owner killed"
converge B "owner killed"
[ "$("$SHMREGCTL" -r B get plain)" = p ] || fail "B lost the plain key"
# the owner is gone: a put naming it is refused, nothing reaches etcd
sctl A put o3 v --owner "$owner" >/dev/null 2>&1
[ $? = 3 ] || fail "put owned by a dead pid accepted"
[ -z "$(ectl get /t/o3)" ] || fail "a dead owner's key reached etcd"

# --- a connection owner: gone when shmregctl's connection closes ---
rev=$(sctl A put e1 v --ephemeral) || fail "ephemeral put"
[ "$(ectl get /t/e1 --rev="$rev" --print-value-only)" = v ] ||
	fail "ephemeral e1 was not in etcd at revision $rev"
etcd_gone e1 50 || fail "ephemeral key outlives its connection"
converge A "connection closed"
converge B "connection closed"

# --- the daemon killed -9: its owners' keys go after the lease TTL ---
sleep 300 &
owner=$!
pids+=("$owner")
sctl A put d1 v --owner "$owner" >/dev/null || fail "owned put d1"
[ "$("$SHMREGCTL" -r B await d1 --timeout 5s)" = v ] || fail "B: await d1"
stop_mirror A KILL
t0=$(date +%s%N)
etcd_gone d1 100 || fail "d1 still in etcd 10 s after the daemon died"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# kept alive every TTL/3 until the kill: it expires within (2/3 TTL, TTL]
# after it, plus etcd's own expiry granularity; never at once
[ "$ms" -ge 500 ] || fail "d1 vanished after $ms ms: before the lease TTL"
kill -0 "$owner" || fail "the owner died (the test needs it alive)"
converge B "daemon killed"

# --- a restarted daemon adopts its predecessor's leases: the keys of an
# owner that still runs stay past the TTL and go when it exits; a dead
# owner's lease is revoked at the restart, before its TTL ---
start_mirror A "$(ep 1),$(ep 2),$(ep 3)" --etcd-lease-ttl 6
sleep 300 &
live=$!
pids+=("$live")
sleep 300 &
dead=$!
pids+=("$dead")
sctl A put a1 v --owner "$live" >/dev/null || fail "owned put a1"
sctl A put b1 v --owner "$dead" >/dev/null || fail "owned put b1"
[ -n "$(ectl get --prefix /t/.shmreg/owners/ --keys-only | grep "/pid/$live/")" ] ||
	fail "no owner record of pid $live in etcd"
stop_mirror A KILL
t0=$(date +%s%N)
kill -9 "$dead"; wait "$dead" 2>/dev/null
start_mirror A "$(ep 1),$(ep 2),$(ep 3)" --etcd-lease-ttl 6
# kept alive until the kill, the lease would end 4 s after it at the
# earliest: gone sooner, it was revoked by the new daemon
etcd_gone b1 30 || fail "a dead owner's key outlives the restart"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 4000 ] || fail "b1 went after $ms ms: its TTL, not a revoke"
# past the old lease's TTL: adopted, kept alive
while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 8000 ]; do sleep 0.2; done
[ -n "$(ectl get /t/a1)" ] || fail "a live owner's key went with the old daemon"
[ "$("$SHMREGCTL" -r B get a1)" = v ] || fail "B: a1 went"
grep -q '1 owner lease of a previous daemon adopted, 1 revoked' "$scratch/A.err" ||
	fail "A did not log the adoption"
kill -9 "$live"; wait "$live" 2>/dev/null
etcd_gone a1 50 || fail "an adopted owner's exit left its key in etcd"
converge A "adopted owner exited"
converge B "adopted owner exited"

finish A B
