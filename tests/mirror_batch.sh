#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: BATCH through a mirror is one etcd txn.  A batch of puts
# (with attributes, expect-rev absent), an attribute update, a key put
# twice and a key put then deleted appears in etcd at one revision (every
# key and sidecar it changed has that mod_revision, etcd's revision moved
# by one), the reply is that revision and both mirrors converge to etcd's
# range.  A batch whose CAS fails, whose delete finds no key, or that holds
# what a mirror refuses (a parent, a reserved key, more keys than a txn
# takes) changes nothing in etcd and names the failing operation with the
# local batch's errno.  A CAS that only etcd can see failing (written by
# etcdctl just before) gets the same answer.  (And --etcd-lease-ttl 1m
# grants owners' leases of 60 s.)  Skips without etcd.
. "$(dirname "$0")/mirror_lib.sh"

start_cluster
start_mirror A "$(ep 1),$(ep 2),$(ep 3)" --etcd-lease-ttl 1m
start_mirror B "$(ep 3),$(ep 2),$(ep 1)"

batch_json() { # NAME: run stdin as a batch through NAME, print its --json
	sctl "$1" batch -j 2>/dev/null
}
# field F of a batch's json reply
jf() { python3 -c "import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ''))" "$1" "$2"; }

sctl A put b0 old --attr x=1 >/dev/null || fail "seed b0"
sctl A put gone v >/dev/null || fail "seed gone"
before=$(etcd_rev)

# --- a batch that passes: one txn, one revision ---
out=$(batch_json A <<'EOF'
put b1 v1 --attr env=prod
put b2 v2
attrs b0 y=2
del b2
put b3 v3 --expect-rev absent
put b3 v4
del gone
EOF
)
rev=$(jf "$out" revision)
[ -n "$rev" ] && [ "$(jf "$out" operations)" = 7 ] || fail "batch: '$out'"
[ "$rev" = $((before + 1)) ] || fail "batch took revision $rev, etcd was at $before"
[ "$(etcd_rev)" = "$rev" ] || fail "etcd moved by more than one revision"
for k in /t/b1 /t/.shmreg/attrs/b1 /t/b0 /t/.shmreg/attrs/b0 /t/b3; do
	[ "$(mod_of "$k")" = "$rev" ] || fail "$k not at revision $rev"
done
[ "$(ectl get /t/b1 --print-value-only)" = v1 ] || fail "b1 in etcd"
[ "$(ectl get /t/b3 --print-value-only)" = v4 ] || fail "b3 in etcd (last put)"
[ "$(ectl get /t/b0 --print-value-only)" = old ] || fail "attrs lost b0's value"
[ "$(ectl get /t/.shmreg/attrs/b0 --print-value-only | tr '\0' '|')" = "y|2|" ] ||
	fail "b0's sidecar"
[ -z "$(ectl get /t/b2)$(ectl get /t/gone)" ] || fail "b2 or gone still in etcd"
# acknowledged after the local segment applied it
[ "$("$SHMREGCTL" -r A get b3)" = v4 ] || fail "A: batch not visible at the reply"
[ "$("$SHMREGCTL" -r A list -w simple b1 | cut -f3)" = "$rev" ] ||
	fail "A: b1's revision is not the batch's"
[ "$("$SHMREGCTL" -r A attrs b0)" = "y=2" ] || fail "A: b0's attributes"
"$SHMREGCTL" -r B await b3 --timeout 5s >/dev/null || fail "B: await b3"
converge A "batch"
converge B "batch"

# --- batches that fail change nothing and name the operation ---
b1rev=$(mod_of /t/b1)
refused() { # NAME ERRNO INDEX WHAT (batch on stdin)
	local out at
	at=$(etcd_rev)
	out=$(batch_json "$1")
	[ "$(jf "$out" errno)" = "$2" ] && [ "$(jf "$out" operation)" = "$3" ] ||
		fail "$4: '$out', want errno $2 at operation $3"
	[ "$(etcd_rev)" = "$at" ] || fail "$4: etcd changed"
}
refused A 17 1 "stale CAS" <<EOF
put c1 v
put b1 z --expect-rev $((b1rev - 1))
EOF
refused A 17 2 "put absent of an existing key" <<EOF
put c1 v
attrs b1 k=v
put b0 z --expect-rev absent
EOF
refused A 2 1 "delete of an absent key" <<'EOF'
put c1 v
del nosuch
EOF
refused A 2 0 "attrs of an absent key" <<'EOF'
attrs nosuch a=b
put c1 v
EOF
refused A 2 2 "a key deleted earlier in the batch" <<'EOF'
put c1 v
del b1
attrs b1 a=b
EOF
refused A 95 1 "a parent" <<'EOF'
put c1 v
put c2 v --parent b1
EOF
refused A 22 1 "a reserved key" <<'EOF'
put c1 v
put .shmreg/attrs/c1 v
EOF
# the dry run's earlier failure comes first, as locally
refused A 2 0 "a missing key before a refused option" <<'EOF'
del nosuch
put c2 v --parent b1
EOF
for i in $(seq 0 64); do echo "put many$i v"; done >"$scratch/many"
at=$(etcd_rev)
out=$(batch_json A <"$scratch/many")
[ "$(jf "$out" errno)" = 7 ] || fail "65 keys in one txn: '$out', want E2BIG"
[ "$(etcd_rev)" = "$at" ] || fail "65 keys: etcd changed"
[ -z "$(ectl get /t/c1)" ] || fail "c1 of a failed batch in etcd"
[ -z "$("$SHMREGCTL" -r A get c1 2>/dev/null)" ] || fail "A: c1 of a failed batch"

# --- a conflict written to etcd just before: the same answer, whether
# the mirror saw it (dry run) or only etcd's compare did ---
for i in $(seq 1 10); do
	ectl put "/t/race$i" x >/dev/null || fail "etcdctl put race$i"
	out=$(printf 'put ok%s v\nput race%s w --expect-rev absent\n' "$i" "$i" |
		batch_json B)
	[ "$(jf "$out" errno)" = 17 ] && [ "$(jf "$out" operation)" = 1 ] ||
		fail "race$i: '$out'"
	[ -z "$(ectl get "/t/ok$i")" ] || fail "race$i: ok$i in etcd"
done
converge A "failed batches"
converge B "failed batches"

# --etcd-lease-ttl 1m: an owner's lease is granted with 60 s
sctl A put owned v --owner $$ >/dev/null || fail "owned put"
lease=$(ectl get /t/owned -w json | python3 -c 'import json,sys; print("%x" % json.load(sys.stdin)["kvs"][0]["lease"])')
[ "$(ectl lease timetolive "$lease" -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["granted-ttl"])')" = 60 ] ||
	fail "lease $lease: not granted with --etcd-lease-ttl 1m"

finish A B
