#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: the attacks of tests/trust.c through the real binaries:
# uid 65534 runs shmregctl before root's shmregd first opens a registry
# (shmregd must refuse, naming the file and its owner, and exit 1), takes a
# read lock on a running daemon's lock file (it cannot: 0600), sees the
# daemon alive and then dead through the pid test; shmregd --mode 0666 then
# 0644 leaves the wait file 0644 (nobody cannot truncate it), and the
# restarted daemon takes puts; the daemon's socket lock file is 0600 and
# one that nobody planted is refused.  Root only (skip 77), with $SHMREGD and
# $SHMREGCTL from ctest.
set -u
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root (the attacker is uid 65534)"
	exit 77
fi
if [ -z "${SHMREGD:-}" ] || [ -z "${SHMREGCTL:-}" ]; then
	echo "SKIP: no shmregd or shmregctl built"
	exit 77
fi
scratch=${SHMREG_DIR:?}
dir=$scratch/shm
mkdir -p "$dir" && chmod 1777 "$dir" && chmod 0755 "$scratch" || exit 1
export SHMREG_DIR=$dir
export SHMREG_SOCKET=$scratch/sock
unset XDG_RUNTIME_DIR
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
}
daemon_pid=
start_daemon() { # NAME MODE: start shmregd in the background, wait for it
	"$SHMREGD" -r "$1" -s "$SHMREG_SOCKET" --mode "$2" \
		2>"$scratch/d.err" &
	daemon_pid=$!
	for _ in $(seq 200); do
		[ -S "$SHMREG_SOCKET" ] && "$SHMREGCTL" -r "$1" stats \
			>/dev/null 2>&1 && return 0
		kill -0 "$daemon_pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
stop_daemon() { # SIGNAL
	kill "-$1" "$daemon_pid" 2>/dev/null
	wait "$daemon_pid" 2>/dev/null
	daemon_pid=
}
trap '[ -n "$daemon_pid" ] && kill -9 "$daemon_pid" 2>/dev/null' EXIT
state() { # NAME [as nobody]: the state line of shmregctl stats
	"${@:2}" "$SHMREGCTL" -r "$1" stats 2>&1 |
		sed -n 's/^state *//p'
}

# 4: nobody's registry, made before root's daemon ever ran
nobody "$SHMREGCTL" -r pre --embedded put config/admin attacker >/dev/null ||
	fail "nobody could not create its registry"
timeout 10 "$SHMREGD" -r pre -s "$SHMREG_SOCKET" 2>"$scratch/d.err"
rc=$?
[ $rc = 1 ] || fail "shmregd on nobody's files exited $rc, want 1"
grep -q "refusing $dir/shmreg.pre.lock: owned by uid 65534" \
	"$scratch/d.err" || fail "no refusal message: $(cat "$scratch/d.err")"
grep -q "Operation not permitted" "$scratch/d.err" ||
	fail "no EPERM in: $(cat "$scratch/d.err")"
[ ! -S "$SHMREG_SOCKET" ] || fail "shmregd left its socket"
out=$("$SHMREGCTL" -r pre --embedded put k v 2>&1)
rc=$?
[ $rc != 0 ] && [[ $out == *"owned by uid 65534"* ]] ||
	fail "root's embedded put on nobody's files: $rc: $out"

# 3: a daemon nobody cannot lock out, alive and dead to nobody
start_daemon lk 0644 || fail "shmregd -r lk did not start: $(cat "$scratch/d.err")"
[ "$(stat -c %a "$dir/shmreg.lk.lock")" = 600 ] || fail "lock file not 0600"
nobody sh -c "exec 3<'$dir/shmreg.lk.lock'" 2>/dev/null &&
	fail "nobody opened the lock file"
[ "$(state lk nobody)" = open ] || fail "nobody: daemon not open: $(state lk nobody)"
"$SHMREGCTL" -r lk put a 1 >/dev/null || fail "put through the daemon"
stop_daemon 9
[ "$(state lk nobody)" = dead ] || fail "nobody: killed daemon not dead: $(state lk nobody)"
start_daemon lk 0644 || fail "shmregd -r lk did not restart: $(cat "$scratch/d.err")"
[ "$("$SHMREGCTL" -r lk get a 2>&1)" = 1 ] || fail "entry lost in the restart"
stop_daemon TERM

# 5: the mode of this start, for every file
start_daemon md 0666 || fail "shmregd --mode 0666 did not start"
[ "$(stat -c %a "$dir/shmreg.md.wait")" = 666 ] || fail "wait not 0666"
stop_daemon TERM
start_daemon md 0644 || fail "shmregd --mode 0644 did not start"
for f in shmreg.md:644 shmreg.md.wait:644 shmreg.md.lock:600; do
	m=$(stat -c %a "$dir/${f%:*}")
	[ "$m" = "${f#*:}" ] || fail "${f%:*} is $m, want ${f#*:}"
done
nobody truncate -s 0 "$dir/shmreg.md.wait" 2>/dev/null &&
	fail "nobody truncated the wait file"
"$SHMREGCTL" -r md put b 2 >/dev/null || fail "put after the attack"
kill -0 "$daemon_pid" || fail "the daemon died"
stop_daemon TERM

# the daemon's socket lock: nobody can neither lock it nor plant one
start_daemon sk 0644 || fail "shmregd -r sk did not start"
[ "$(stat -c %a "$SHMREG_SOCKET.lock")" = 600 ] ||
	fail "socket lock file not 0600"
nobody sh -c "exec 3<'$SHMREG_SOCKET.lock'" 2>/dev/null &&
	fail "nobody opened the socket lock file"
stop_daemon TERM
# a socket in the sticky, world-writable directory: nobody plants the
# lock file first
sock2=$dir/sk.sock
nobody sh -c "umask 022; : > '$sock2.lock'" ||
	fail "nobody could not plant a socket lock file"
timeout 10 "$SHMREGD" -r sk -s "$sock2" 2>"$scratch/d.err"
rc=$?
[ $rc = 1 ] || fail "shmregd on nobody's socket lock exited $rc, want 1"
grep -q "refusing $sock2.lock" "$scratch/d.err" ||
	fail "no refusal of the socket lock: $(cat "$scratch/d.err")"
rm -f "$sock2.lock"

[ $fails = 0 ] && echo "ok"
[ $fails = 0 ]
