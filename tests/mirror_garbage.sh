#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: every reply from etcd is untrusted.  A mirror pointed at a
# server that answers every gateway call with hostile bytes (bad JSON,
# wrong types, huge numbers, bad base64, events past their header, a watch
# stream of garbage) keeps running: what the registry held stays readable,
# health says stale, writes fail with an error within the bound, and a
# clean stop exits 0 (no crash, no sanitizer report).  Needs python3 only.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/mirror_common.sh"
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }

python3 "$(dirname "$0")/mirror_garbage.py" >"$scratch/port" &
pids+=("$!")
for _ in $(seq 100); do
	[ -s "$scratch/port" ] && break
	sleep 0.05
done
port=$(cat "$scratch/port")
[ -n "$port" ] || { echo "FAIL: the fake server did not start"; exit 1; }

# a registry with contents, as a mirror that etcd reached before
"$SHMREGCTL" -r G --embedded put t/keep kept >/dev/null ||
	{ echo "FAIL: seed"; exit 1; }
sock=$scratch/G.sock
"$SHMREGD" -r G -s "$sock" --etcd "http://127.0.0.1:$port" \
	--etcd-prefix /t/ --etcd-timeout 1000 --etcd-stall-timeout 2000 \
	2>"$scratch/G.err" &
dpid=$!
pids+=("$dpid")
for _ in $(seq 200); do
	"$SHMREGCTL" -r G --socket "$sock" ping >/dev/null 2>&1 && break
	sleep 0.05
done

# several rounds of hostile replies (watch reconnects with backoff)
for round in $(seq 1 12); do
	kill -0 "$dpid" 2>/dev/null || { fail "shmregd died (round $round)"; break; }
	[ "$("$SHMREGCTL" -r G get t/keep)" = kept ] ||
		fail "round $round: the last state is not readable"
	t0=$(date +%s%N)
	"$SHMREGCTL" -r G --socket "$sock" put "w$round" v >/dev/null 2>&1
	rc=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ "$rc" = 3 ] || fail "round $round: a write answered by garbage: exit $rc"
	[ "$ms" -lt 3000 ] || fail "round $round: the write took $ms ms"
	sleep 0.2
done
# stale, but for the instants after each "created" of the fake's watch
stale=0
for _ in $(seq 30); do
	h=$("$SHMREGCTL" -r G --socket "$sock" health 2>&1)
	case $h in *"stale since"*) stale=1; break ;; esac
	sleep 0.1
done
[ "$stale" = 1 ] || fail "health says '$h'"
# reconnects back off: at most a few a second, however fast the garbage
n=$(grep -c "bad etcd watch message" "$scratch/G.err")
[ "$n" -le 40 ] || fail "$n reconnects in a few seconds: no backoff"
grep -q "bad etcd watch message\|etcd watch on" "$scratch/G.err" ||
	fail "the bad watch replies were not logged"
kill -TERM "$dpid"
wait "$dpid"
rc=$?
[ "$rc" = 0 ] || { fail "shmregd exited $rc"; tail -30 "$scratch/G.err"; }
[ "$fails" = 0 ] || exit 1
echo "PASS"
