#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: TTLs and owners' leases through a mirror.  A put with a TTL
# is an etcd key under a lease of its own, granted with the TTL rounded up
# to whole seconds (--ttl 5.2: 6 s); when etcd expires it the key and its
# attribute sidecar vanish from etcd and from both mirrors, not before the
# TTL, and the other host's watch streams the delete.  A BATCH holding an
# owned put, a connection-owned put and a TTL put is one txn whose keys
# carry their leases (the owner's lease is the one its single puts got);
# when the owner is killed its keys vanish on both mirrors while the
# batch's plain key stays.  Two leases for one key are refused (-EINVAL,
# naming the operation).  Skips without etcd.
. "$(dirname "$0")/mirror_lib.sh"

start_cluster
start_mirror A "$(ep 1),$(ep 2),$(ep 3)" --etcd-lease-ttl 3
start_mirror B "$(ep 3),$(ep 2),$(ep 1)"

lease_of() { # KEY: the etcd lease id of /t/KEY, hex (0: none)
	ectl get "/t/$1" -w json | python3 -c '
import json, sys
kvs = json.load(sys.stdin).get("kvs", [])
print("%x" % kvs[0].get("lease", 0) if kvs else "absent")'
}
granted_ttl() { # HEX-LEASE: the TTL etcd granted it with
	ectl lease timetolive "$1" -w json |
		python3 -c 'import json,sys; print(json.load(sys.stdin).get("granted-ttl", ""))'
}
etcd_gone() { # KEY TENTHS: wait until etcd has no /t/KEY
	for _ in $(seq "$2"); do
		[ -z "$(ectl get "/t/$1")" ] && return 0
		sleep 0.1
	done
	return 1
}
local_gone() { # NAME KEY TENTHS: wait until registry NAME has no KEY
	for _ in $(seq "$3"); do
		"$SHMREGCTL" -r "$1" get "$2" >/dev/null 2>&1 || return 0
		sleep 0.1
	done
	return 1
}

# --- a TTL put: its own lease, rounded up to whole seconds ---
sctl B watch --json >"$scratch/watch" 2>&1 &
wpid=$!
pids+=("$wpid")
sctl A put keep v >/dev/null || fail "plain put"
"$SHMREGCTL" -r B await keep --timeout 5s >/dev/null || fail "B: await keep"
t0=$(date +%s%N)
rev=$(sctl A put t1 v1 --ttl 5.2) || fail "TTL put t1"
# read-your-writes at the reply; checked first, long before the TTL
[ "$("$SHMREGCTL" -r A get t1)" = v1 ] || fail "A: t1 not there at the reply"
sctl A put t2 v2 --ttl 5.2 --attr a=b >/dev/null || fail "TTL put t2"
[ "$("$SHMREGCTL" -r B await t2 --timeout 5s)" = v2 ] || fail "B: await t2"
l1=$(lease_of t1)
l2=$(lease_of t2)
[ "$l1" != 0 ] && [ "$l1" != absent ] || fail "t1 has no lease in etcd ($l1)"
[ "$l1" != "$l2" ] || fail "two TTL puts share lease $l1"
[ "$(granted_ttl "$l1")" = 6 ] || fail "--ttl 5.2: lease $l1 not of 6 s"
[ "$(lease_of .shmreg/attrs/t2)" = "$l2" ] ||
	fail "t2's attribute sidecar is not under t2's lease"
[ "$(lease_of keep)" = 0 ] || fail "a plain key got a lease"
etcd_gone t1 150 && etcd_gone t2 50 || fail "TTL keys outlive 15 s in etcd"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# granted after t0 with 6 s: etcd expires it no sooner
[ "$ms" -ge 5900 ] || fail "t1 expired after $ms ms, before its 6 s lease"
[ -z "$(ectl get /t/.shmreg/attrs/t2)" ] || fail "t2's sidecar outlived it"
local_gone A t1 50 && local_gone B t1 50 && local_gone B t2 50 ||
	fail "a mirror kept an expired key"
converge A "TTL expired"
converge B "TTL expired"
[ "$("$SHMREGCTL" -r B get keep)" = v ] || fail "B lost the plain key"
for _ in $(seq 50); do
	grep -q '"type":"del","key":"t1"' "$scratch/watch" && break
	sleep 0.1
done
grep -q "\"rev\":$rev,\"type\":\"put\",\"key\":\"t1\"" "$scratch/watch" ||
	fail "B's watch missed the put of t1 at $rev"
grep -q '"type":"del","key":"t1"' "$scratch/watch" ||
	{ fail "B's watch missed t1's expiry"; cat "$scratch/watch"; }
kill "$wpid"; wait "$wpid" 2>/dev/null

# --- a batch with owners and a TTL: one txn, each key under its lease ---
sleep 300 &
owner=$!
pids+=("$owner")
sctl A put solo v --owner "$owner" >/dev/null || fail "owned single put"
out=$(sctl A batch -j <<EOF
put o1 v1 --owner $owner
put o2 v2 --owner $owner --attr x=1
put e1 v --ephemeral
put bt v --ttl 60
put plain p
EOF
) || fail "batch with owners: '$out'"
lo=$(lease_of solo)
[ "$(lease_of o1)" = "$lo" ] && [ "$(lease_of o2)" = "$lo" ] ||
	fail "the batch's owned keys are not under the owner's lease $lo"
[ "$(lease_of .shmreg/attrs/o2)" = "$lo" ] || fail "o2's sidecar lease"
le=$(lease_of bt)
[ "$le" != 0 ] && [ "$le" != "$lo" ] && [ "$(granted_ttl "$le")" = 60 ] ||
	fail "bt: lease $le is not a 60 s one of its own"
[ "$(lease_of plain)" = 0 ] || fail "the batch's plain key got a lease"
# e1 belonged to the batch command's connection, closed by now
etcd_gone e1 50 || fail "the batch's ephemeral key outlives its connection"
[ "$("$SHMREGCTL" -r B await o2 --timeout 5s)" = v2 ] || fail "B: await o2"
kill -9 "$owner"; wait "$owner" 2>/dev/null
etcd_gone o1 50 && etcd_gone o2 50 && etcd_gone solo 50 ||
	fail "owner killed: its batch keys stay in etcd"
converge A "owner killed"
converge B "owner killed"
[ "$("$SHMREGCTL" -r B get plain)" = p ] || fail "B lost the batch's plain key"
[ "$("$SHMREGCTL" -r B get bt)" = v ] || fail "B lost the batch's TTL key"

# --- one key, two leases: refused, nothing sent ---
at=$(etcd_rev)
out=$(printf 'put n1 v\nput n2 v --owner %s --ttl 5\n' "$$" | sctl A batch -j 2>/dev/null)
case $out in
*'"errno":22'*'"operation":1'*) ;;
*) fail "owner and TTL in one put: '$out'" ;;
esac
sctl A put n3 v --ttl 5 --ephemeral >/dev/null 2>&1
[ $? = 3 ] || fail "a single put with a TTL and an owner accepted"
now=$(etcd_rev)
[ "$now" = "$at" ] || fail "refused puts changed etcd ($at -> $now)"

finish A B
