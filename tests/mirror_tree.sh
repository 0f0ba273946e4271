#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: parents on a mirror.  A put with a parent through host A
# writes the key and a link key /t/.shmreg/children/LEN/PARENT/CHILD in
# one etcd revision, and host B's children() lists it; a missing parent
# (-ENOENT), a cycle (-ELOOP), a delete of an entry with children
# (-ENOTEMPTY) change nothing in etcd; a move replaces the link, a put
# without a parent makes a root; a tree delete removes the subtree and its
# links in one etcd revision.  A parent deleted directly in etcd (etcdctl)
# leaves its children as roots on every host, also after it is put again
# and on a third host that ranges etcd afresh; so does a parent whose
# owner's lease ends.  A restarted daemon keeps moving what it mirrored.
# Skips without etcd.
. "$(dirname "$0")/mirror_lib.sh"

start_cluster
start_mirror A "$(ep 1),$(ep 2),$(ep 3)"
start_mirror B "$(ep 3),$(ep 2),$(ep 1)"

kids() { # NAME KEY: KEY's children on host NAME, sorted, on one line
	"$SHMREGCTL" -r "$1" children "$2" -w simple 2>/dev/null | cut -f1 |
		sort | tr '\n' ' '
}
links() { # every link key in etcd, without the prefix, on one line
	ectl get --prefix /t/.shmreg/children/ --keys-only |
		sed -n 's|^/t/.shmreg/children/||p' | sort | tr '\n' ' '
}
want_kids() { # KEY "CHILD CHILD " WHAT: on both hosts, in time
	local a b
	for _ in $(seq 50); do
		a=$(kids A "$1") b=$(kids B "$1")
		[ "$a" = "$2" ] && [ "$b" = "$2" ] && return 0
		sleep 0.1
	done
	fail "$3: children of $1: A '$a', B '$b', want '$2'"
}
refused() { # STATUS WHAT COMMAND...: the command exits STATUS, etcd stays
	local want=$1 what=$2 at rc
	at=$(etcd_rev)
	shift 2
	"$@" >/dev/null 2>"$scratch/err"
	rc=$?
	[ "$rc" = "$want" ] || fail "$what: exit $rc, want $want ($(cat "$scratch/err"))"
	[ "$(etcd_rev)" = "$at" ] || fail "$what: etcd changed"
}

# --- a tree through A, seen on B ---
sctl A put r root >/dev/null || fail "put r"
rev=$(sctl A put c1 one --parent r) || fail "put c1 under r"
[ "$(mod_of /t/c1)" = "$rev" ] && [ "$(mod_of /t/.shmreg/children/1/r/c1)" = "$rev" ] ||
	fail "c1 and its link not written at one revision $rev"
[ "$(ectl get /t/c1 --print-value-only)" = one ] || fail "etcd: c1's value"
sctl A put c2 two --parent r --attr k=v >/dev/null || fail "put c2 under r"
sctl B put g1 three --parent c1 >/dev/null || fail "put g1 under c1 through B"
[ "$(links)" = "1/r/c1 1/r/c2 2/c1/g1 " ] || fail "links in etcd: '$(links)'"
want_kids r "c1 c2 " "tree"
want_kids c1 "g1 " "tree"
[ "$("$SHMREGCTL" -r B attrs c2)" = "k=v" ] || fail "B: c2's attributes"
converge A "tree"
converge B "tree"

# --- what the local rules refuse, refused in etcd too ---
refused 3 "a missing parent" sctl A put x v --parent nosuch
refused 3 "a cycle" sctl A put r v --parent g1
refused 3 "its own parent" sctl B put c1 v --parent c1
refused 3 "del with children" sctl A del c1
refused 3 "del with children on B" sctl B del r
[ -z "$(ectl get /t/x)" ] || fail "x reached etcd"
for k in r c1 g1; do
	"$SHMREGCTL" -r B get "$k" >/dev/null || fail "B lost $k"
done
# a batch does not move links: a tree key in one is refused, naming it
out=$(printf 'put b1 v\nput c2 w\n' | sctl A batch -j 2>/dev/null)
case $out in
*'"errno":95'*'"operation":1'*) ;;
*) fail "a batch touching a child: '$out'" ;;
esac

# --- moves: under another parent, and to the roots ---
sctl A put c2 two --parent c1 >/dev/null || fail "move c2 under c1"
[ "$(links)" = "1/r/c1 2/c1/c2 2/c1/g1 " ] || fail "after the move: '$(links)'"
want_kids c1 "c2 g1 " "move"
want_kids r "c1 " "move"
[ "$("$SHMREGCTL" -r B attrs c2)" = "" ] || fail "the re-put kept c2's old attributes"
sctl B put c2 two >/dev/null || fail "put c2 without a parent"
[ "$(links)" = "1/r/c1 2/c1/g1 " ] || fail "c2 made a root: '$(links)'"
want_kids c1 "g1 " "root"
converge A "moves"
converge B "moves"

# --- a tree delete: one etcd revision, links and all ---
sctl A put g2 v --parent g1 >/dev/null || fail "put g2 under g1"
at=$(etcd_rev)
out=$(sctl B del --recursive c1) || fail "del --recursive c1"
[ "$out" = 3 ] || fail "del --recursive c1 deleted '$out', want 3"
[ "$(etcd_rev)" = $((at + 1)) ] || fail "the tree delete took more than one revision"
[ -z "$(ectl get --prefix /t/c1)$(ectl get --prefix /t/g)" ] || fail "subtree left in etcd"
[ "$(links)" = "" ] || fail "links left: '$(links)'"
want_kids r "" "tree delete"
converge A "tree delete"
converge B "tree delete"
sctl A del r >/dev/null || fail "del r, childless now"

# --- a tree delete takes 42 entries at most (etcd's 128 txn operations)
sctl A put big v >/dev/null || fail "put big"
for i in $(seq 1 42); do
	sctl A put "big$i" v --parent big >/dev/null || fail "put big$i"
done
refused 3 "a tree delete of 43 entries" sctl A del --recursive big
grep -q 'Argument list too long' "$scratch/err" || fail "43 entries: $(cat "$scratch/err")"
sctl A del big42 >/dev/null || fail "del big42"
at=$(etcd_rev)
out=$(sctl A del --recursive big) || fail "a tree delete of 42 entries"
[ "$out" = 42 ] && [ "$(etcd_rev)" = $((at + 1)) ] ||
	fail "42 entries: deleted '$out', etcd $at -> $(etcd_rev)"
converge B "42 entries deleted"

# --- a parent deleted directly in etcd: its children become roots ---
sctl A put p pv >/dev/null || fail "put p"
sctl A put k1 v1 --parent p >/dev/null || fail "put k1"
sctl A put k2 v2 --parent p --attr a=1 >/dev/null || fail "put k2"
want_kids p "k1 k2 " "before etcdctl del"
ectl del /t/p >/dev/null || fail "etcdctl del p"
converge A "parent deleted in etcd"
converge B "parent deleted in etcd"
want_kids p "" "parent deleted in etcd"
[ "$("$SHMREGCTL" -r B attrs k2)" = "a=1" ] || fail "k2 lost its attributes"
ectl put /t/p again >/dev/null || fail "etcdctl put p"
"$SHMREGCTL" -r B await p --timeout 5s >/dev/null || fail "B: await p"
want_kids p "" "parent put again"
# a third host ranges etcd afresh: the same tree
start_mirror C "$(ep 2)"
converge C "fresh range"
[ "$(kids C p)" = "" ] || fail "C: children of p: '$(kids C p)'"
sctl A del p >/dev/null || fail "del p: its old links are no children"
[ "$(links)" = "" ] || fail "links left after del p: '$(links)'"
converge C "del p"

# --- a parent's owner ends: its children stay, as roots ---
sleep 300 &
owner=$!
pids+=("$owner")
sctl A put op v --owner "$owner" >/dev/null || fail "owned parent"
sctl A put oc v --parent op >/dev/null || fail "child of the owned parent"
want_kids op "oc " "owned parent"
kill -9 "$owner"; wait "$owner" 2>/dev/null
converge A "owner killed"
converge B "owner killed"
"$SHMREGCTL" -r B get oc >/dev/null || fail "B: oc went with its parent's lease"
want_kids op "" "owner killed"

# --- a child another etcd client adds just before a delete: the same
# answer, whether the mirror saw it (local check) or only etcd's compare
for i in $(seq 1 10); do
	sctl A put "z$i" v >/dev/null || fail "put z$i"
	ectl put "/t/zc$i" v >/dev/null &&
		ectl put "/t/.shmreg/children/$((${#i} + 1))/z$i/zc$i" x >/dev/null ||
		fail "etcdctl: a child of z$i"
	sctl A del "z$i" >/dev/null 2>"$scratch/err"
	rc=$?
	[ "$rc" = 3 ] && grep -q 'has children' "$scratch/err" ||
		fail "del z$i with a child just added: exit $rc ($(cat "$scratch/err"))"
	[ -n "$(ectl get "/t/z$i")" ] || fail "z$i deleted from etcd"
done
want_kids z7 "zc7 " "children added by etcdctl"

# --- a restarted daemon knows the links of what it mirrors ---
sctl A put q1 v >/dev/null && sctl A put q2 v >/dev/null &&
	sctl A put m1 v --parent q1 >/dev/null || fail "put m1 under q1"
stop_mirror A
start_mirror A "$(ep 1),$(ep 2),$(ep 3)"
sctl A put m1 v --parent q2 >/dev/null || fail "restarted A: move m1"
# (oc's link to op stays in etcd, naming a parent that is gone: no child)
[ "$(links | tr ' ' '\n' | grep -v '^z\|/z' | tr '\n' ' ')" = "2/op/oc 2/q2/m1 " ] || fail "restarted A: links '$(links)'"
want_kids q2 "m1 " "restart"
converge A "restart"
converge B "restart"
converge C "restart"

finish A B C
