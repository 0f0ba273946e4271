#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ctl_batch.sh - shmregctl batch, del --prefix, reload and registries
# through a real shmregd: a batch with quoting and escapes applied whole;
# a failing compare-and-set on line 3 applies nothing (exit 3, the line
# named, the revision unchanged); a malformed line sends nothing (exit 2);
# a parent put earlier in the batch; del --prefix as one commit, children
# first; reload keeping the old contents when the new load fails, then
# taking the fixed one; registries listing both registries of the daemon;
# shmregd's durations with units.
set -euo pipefail

fail() { echo "ctl_batch: FAIL: $*" >&2; exit 1; }
[ -n "${SHMREGCTL:-}" ] && [ -n "${SHMREGD:-}" ] ||
	{ echo "SKIP: no shmregctl or shmregd built"; exit 77; }

scratch=$PWD
export SHMREG_DIR=$scratch
# sun_path is short: the socket goes to a private directory under /tmp
sockdir=$(mktemp -d /tmp/ctl_batch.XXXXXX)
export SHMREG_SOCKET=$sockdir/d.sock
daemon_pid=
cleanup() {
	[ -n "$daemon_pid" ] && kill -9 "$daemon_pid" 2>/dev/null
	rm -rf "$sockdir"
}
trap cleanup EXIT
ctl() { "$SHMREGCTL" -r cb "$@"; }
rev() { ctl stats --json | sed 's/.*"revision":\([0-9]*\).*/\1/'; }

# shmregd's durations: units accepted, a bad one refused as a usage error
set +e
out=$("$SHMREGD" -r cb -s "$SHMREG_SOCKET" --stall-timeout 5x 2>&1)
st=$?
set -e
[ "$st" = 2 ] || fail "--stall-timeout 5x: exit $st ($out)"
case $out in *"500ms, 5s, 1m, 2h"*) ;; *) fail "--stall-timeout 5x: $out" ;; esac

load=$scratch/load
mkdir -p "$load/skill"
printf 'A' >"$load/skill/a"
printf 'role=x\n' >"$load/skill/a.attrs"
printf 'B' >"$load/skill/b"

# readiness through --ready-fd: no polling
mkfifo "$scratch/ready"
"$SHMREGD" -r cb --truncate --load "$load" -r cb2 --truncate \
	-s "$SHMREG_SOCKET" --idle-timeout 2m --stall-timeout 500ms \
	--drain-timeout 1.5s --ready-fd 3 3>"$scratch/ready" \
	2>"$scratch/d.err" &
daemon_pid=$!
read -r -t 20 line <"$scratch/ready" || fail "shmregd not ready: $(cat "$scratch/d.err")"
[ "$line" = READY ] || fail "ready line: $line"

# 1. a batch with quotes and escapes, applied in one commit
r0=$(rev)
out=$(ctl batch <<'IN'
# a comment, then a blank line

put "sp ace" "two words"
put 'lit\n' 'no\escape'
put tab\there "a\tb" --attr kind=esc
put p parent
put p/c child --parent p --attr "role=leaf node"
attrs skill/b tier=1 tier=2
IN
) || fail "batch: exit $?"
[ "$out" = $((r0 + 6)) ] || fail "batch printed '$out', want $((r0 + 6))"
[ "$(ctl get 'sp ace')" = "two words" ] || fail "quoted key"
[ "$(ctl get 'lit\n')" = 'no\escape' ] || fail "single quotes"
[ "$(ctl get --raw "$(printf 'tab\there')")" = "$(printf 'a\tb')" ] ||
	fail "escapes"
[ "$(ctl children p --keys-only)" = p/c ] || fail "parent in the batch"
[ "$(ctl attrs p/c)" = "role=leaf node" ] || fail "attrs of p/c"
[ "$(ctl attrs skill/b | tr '\n' ' ')" = "tier=1 tier=2 " ] ||
	fail "attrs in the batch"

# 2. a failing compare-and-set on line 3: nothing applied
r1=$(rev)
set +e
err=$(printf 'put n1 1\nput n2 2\nput p x --expect-rev 1\ndel skill/a\n' |
	ctl batch 2>&1 >/dev/null)
st=$?
set -e
[ "$st" = 3 ] || fail "failing batch: exit $st ($err)"
case $err in *"stdin:3: File exists; nothing was applied"*) ;;
	*) fail "failing batch message: $err" ;; esac
[ "$(rev)" = "$r1" ] || fail "revision moved: $(rev), want $r1"
ctl get n1 >/dev/null 2>&1 && fail "n1 applied"
[ "$(ctl get skill/a)" = A ] || fail "skill/a deleted"
# --json names the operation and its line
set +e
out=$(printf 'put n1 1\ndel nothing\n' | ctl --json batch 2>/dev/null)
st=$?
set -e
[ "$st" = 1 ] || fail "missing key: exit $st"
[ "$out" = '{"error":"No such file or directory","errno":2,"operation":1,"line":2}' ] ||
	fail "json error: $out"

# 3. a malformed line sends nothing, exit 2
set +e
err=$(printf 'put ok 1\nput "unterminated\n' | ctl batch 2>&1)
st=$?
set -e
[ "$st" = 2 ] || fail "malformed: exit $st ($err)"
case $err in *"stdin:2: unterminated \" quote"*"nothing was sent"*) ;;
	*) fail "malformed message: $err" ;; esac
ctl get ok >/dev/null 2>&1 && fail "a malformed batch applied a line"
set +e
err=$(echo 'frobnicate k' | ctl batch 2>&1); st=$?
set -e
[ "$st" = 2 ] || fail "unknown command: exit $st"
case $err in *"unknown command 'frobnicate'"*) ;; *) fail "$err" ;; esac
ctl --embedded batch </dev/null >/dev/null 2>&1 && fail "--embedded batch"
out=$(printf 'put j 1\n' | ctl --json batch)
[ "$out" = "{\"revision\":$(rev),\"operations\":1}" ] || fail "json: $out"
# from a file, as the positional FILE
printf 'put f1 1\nput f2 2\r\n' >"$scratch/ops.txt"
out=$(ctl batch "$scratch/ops.txt")
[ "$out" = "$(rev)" ] && [ "$(ctl get f2)" = 2 ] || fail "batch FILE: $out"
set +e
ctl batch "$scratch/none.txt" >/dev/null 2>&1; st=$?
set -e
[ "$st" = 3 ] || fail "batch of a missing file: exit $st"

# 4. del --prefix: one commit through the daemon, children first
printf 'put d/1 1\nput d/2 2\nput d/2/x x --parent d/2\nput d/3 3\n' |
	ctl batch >/dev/null
r2=$(rev)
out=$(ctl --json del --prefix d/)
[ "$out" = "{\"prefix\":\"d/\",\"deleted\":4,\"revision\":$((r2 + 4)),\"via\":\"daemon\"}" ] ||
	fail "del --prefix: $out"
[ -z "$(ctl list d/ --keys-only)" ] || fail "del --prefix left keys"
set +e
ctl del --prefix d/ >/dev/null 2>&1; st=$?
set -e
[ "$st" = 1 ] || fail "del --prefix of nothing: exit $st"

# 5. reload: the batch above changed skill/b's attributes, so a reload
# puts the file's version back; a malformed .attrs then keeps the old
# contents and revision
out=$(ctl reload)
case $out in *"2 files: 1 put, 0 deleted"*) ;; *) fail "reload: $out" ;; esac
[ -z "$(ctl attrs skill/b)" ] || fail "reload: attrs of skill/b"
out=$(ctl reload)
case $out in *"0 put, 0 deleted"*) ;; *) fail "reload: $out" ;; esac
printf 'A2' >"$load/skill/a"
printf 'no equals sign\n' >"$load/skill/a.attrs"
r3=$(rev)
set +e
err=$(ctl reload 2>&1); st=$?
set -e
[ "$st" = 3 ] || fail "bad reload: exit $st ($err)"
case $err in *"skill/a.attrs"*"contents unchanged"*) ;;
	*) fail "bad reload message: $err" ;; esac
[ "$(rev)" = "$r3" ] || fail "bad reload moved the revision"
[ "$(ctl get skill/a)" = A ] || fail "bad reload changed skill/a"
# a vanished file whose entry has a child: the delete would fail, so the
# whole reload is refused
printf 'role=y\n' >"$load/skill/a.attrs"
rm "$load/skill/b"
ctl put skill/b/kid k --parent skill/b >/dev/null
r4=$(rev)
set +e
err=$(ctl --json reload); st=$?
set -e
[ "$st" = 3 ] || fail "reload with a child: exit $st ($err)"
case $err in *'"ok":false'*'"errno":39'*'skill/b: delete'*) ;;
	*) fail "reload with a child: $err" ;; esac
[ "$(rev)" = "$r4" ] || fail "refused reload moved the revision"
[ "$(ctl get skill/a)" = A ] || fail "refused reload applied skill/a"
ctl del skill/b/kid >/dev/null
out=$(ctl reload)
case $out in *"1 put, 1 deleted"*) ;; *) fail "fixed reload: $out" ;; esac
[ "$(ctl get skill/a)" = A2 ] || fail "fixed reload: skill/a"
[ "$(ctl attrs skill/a)" = role=y ] || fail "fixed reload: attrs"
ctl get skill/b >/dev/null 2>&1 && fail "fixed reload kept skill/b"
set +e
err=$("$SHMREGCTL" -r cb2 reload 2>&1); st=$?
set -e
[ "$st" = 3 ] || fail "reload without --load: exit $st"
case $err in *"has no --load"*) ;; *) fail "reload cb2: $err" ;; esac

# 6. registries
"$SHMREGCTL" -r cb2 put only 1 >/dev/null
out=$("$SHMREGCTL" registries -w simple)
want=$(printf 'cb\t%s\t%s\topen\ncb2\t1\t1\topen' \
	"$(ctl stats --json | sed 's/.*"entries":\([0-9]*\).*/\1/')" "$(rev)")
[ "$out" = "$want" ] || fail "registries: '$out', want '$want'"
out=$("$SHMREGCTL" --json registries | sed -n 2p)
[ "$out" = '{"registry":"cb2","entries":1,"revision":1,"state":"open"}' ] ||
	fail "registries --json: $out"
"$SHMREGCTL" registries | head -1 | grep -q '^REGISTRY  *ENTRIES  *REVISION  *STATE$' ||
	fail "registries header"

kill -TERM "$daemon_pid"
wait "$daemon_pid" || fail "shmregd exit status $?"
daemon_pid=
echo "ctl_batch: ok"
