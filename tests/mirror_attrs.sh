#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: attributes through a mirror.  A put with attributes stores
# the value under the key and the "name\0value\0" pairs under the key's
# sidecar P.shmreg/attrs/KEY, in one etcd revision, and both mirrors show
# one change with the attributes (find, attrs); set_attrs keeps the value,
# gives a new revision; a put without attributes removes them; a plain
# etcdctl put keeps them; a sidecar written by etcdctl alone changes the
# attributes only; delete removes key and sidecar; keys under the reserved
# .shmreg/ are refused locally and never mirrored as entries; a resync
# carries attributes.  Skips without etcd.
. "$(dirname "$0")/mirror_lib.sh"
SETATTRS=${1:?usage: mirror_attrs.sh MIRROR_SETATTRS}

start_cluster
start_mirror A "$(ep 1),$(ep 2),$(ep 3)"
start_mirror B "$(ep 3),$(ep 2),$(ep 1)"

attrs_of() { # NAME KEY: its attributes, sorted, one NAME=VALUE a line
	"$SHMREGCTL" -r "$1" attrs "$2" | sort | tr '\n' ' '
}
sidecar() { # KEY: etcd's sidecar value, NULs as '|'
	ectl get "/t/.shmreg/attrs/$1" --print-value-only | tr '\0' '|'
}
await_attrs() { # NAME KEY WANT: wait 5 s for KEY's attributes to be WANT
	local got
	for _ in $(seq 50); do
		got=$(attrs_of "$1" "$2" 2>/dev/null)
		[ "$got" = "$3" ] && return 0
		sleep 0.1
	done
	fail "$1: $2 has attributes '$got', want '$3'"
	return 1
}

rev=$(sctl A put svc/db v1 --attr env=prod --attr tier=db) ||
	fail "put with attributes"
[ "$(ectl get /t/svc/db --print-value-only)" = v1 ] || fail "value in etcd"
[ "$(sidecar svc/db)" = "env|prod|tier|db|" ] ||
	fail "sidecar in etcd: '$(sidecar svc/db)'"
# one revision for both
[ "$(ectl get /t/.shmreg/attrs/svc/db -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["kvs"][0]["mod_revision"])')" = "$rev" ] ||
	fail "sidecar not written in the put's revision"
[ "$(attrs_of A svc/db)" = "env=prod tier=db " ] || fail "A: attributes"
"$SHMREGCTL" -r B await svc/db --timeout 5s >/dev/null || fail "B: await"
await_attrs B svc/db "env=prod tier=db "
[ "$("$SHMREGCTL" -r B find env=prod -w simple | cut -f1)" = svc/db ] ||
	fail "B: find env=prod"
converge A "put with attributes"
converge B "put with attributes"
# the sidecar is no entry
[ -z "$("$SHMREGCTL" -r B list .shmreg 2>/dev/null | tail -n +2)" ] ||
	fail "B mirrors the sidecar as an entry"

# set_attrs: same value, new revision, new attributes
srev=$("$SETATTRS" "$scratch/A.sock" A svc/db env=staging) ||
	fail "set_attrs: $srev"
[ "$srev" -gt "$rev" ] || fail "set_attrs gave no new revision"
[ "$(ectl get /t/svc/db --print-value-only)" = v1 ] || fail "set_attrs lost the value"
[ "$(sidecar svc/db)" = "env|staging|" ] || fail "sidecar after set_attrs"
await_attrs B svc/db "env=staging "
[ "$("$SHMREGCTL" -r B list -w simple svc/db | cut -f3)" = "$srev" ] ||
	fail "B: set_attrs revision"
[ "$("$SETATTRS" "$scratch/A.sock" A nosuch a=b)" = "No such file or directory" ] ||
	fail "set_attrs of an absent key is not -ENOENT"

# a plain etcdctl put keeps the attributes (the sidecar is unchanged)
ectl put /t/svc/db v2 >/dev/null
for _ in $(seq 50); do
	[ "$("$SHMREGCTL" -r B get svc/db)" = v2 ] && break
	sleep 0.1
done
await_attrs B svc/db "env=staging "
# a sidecar written alone changes the attributes, not the value
printf 'zone\0eu\0' | etcdctl --endpoints="$all_eps" put /t/.shmreg/attrs/svc/db >/dev/null
await_attrs A svc/db "zone=eu "
[ "$("$SHMREGCTL" -r A get svc/db)" = v2 ] || fail "sidecar alone changed the value"
converge A "sidecar alone"
converge B "sidecar alone"

# a put without attributes removes them, sidecar included
sctl A put svc/db v3 >/dev/null || fail "plain put"
[ -z "$(ectl get /t/.shmreg/attrs/svc/db)" ] || fail "sidecar stays"
await_attrs B svc/db ""

# delete: key and sidecar
sctl A put svc/x x --attr a=1 >/dev/null || fail "put x"
sctl A del svc/x >/dev/null || fail "del x"
[ -z "$(ectl get --prefix /t/svc/x)$(ectl get /t/.shmreg/attrs/svc/x)" ] ||
	fail "del left key or sidecar"
sctl A del svc/x >/dev/null 2>&1
[ $? = 1 ] || fail "second del is not 'not found'"

# reserved keys
sctl A put .shmreg/attrs/y v >/dev/null 2>&1
[ $? = 3 ] || fail "a reserved local key accepted"

# a resync carries attributes
sctl A put r1 v --attr k=v >/dev/null || fail "put r1"
stop_mirror B
ectl put /t/r2 w >/dev/null
crev=$(ectl put /t/r3 z -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
ectl compaction "$crev" >/dev/null || fail "compaction"
start_mirror B "$(ep 3),$(ep 2),$(ep 1)"
converge B "resync"
await_attrs B r1 "k=v "

stop_mirror A
stop_mirror B
if [ "$fails" != 0 ]; then
	for f in A.err B.err; do echo "== $f"; tail -20 "$scratch/$f"; done
	exit 1
fi
echo "PASS"
