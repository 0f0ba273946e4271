#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# openresty_example.sh - examples/openresty in Debian's nginx: two workers
# serve a registry the master opened before fork, written by shmregd.
# Checks over HTTP that both workers serve (by their pids, which must be
# the master's children), that a value changed after the workers started
# is what every later request gets from either worker, that a deleted key
# is gone from both, that they go on through a shmregd restart, and that
# they follow the registry to the grown segment a large value makes the
# writer publish (a segment handoff).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
. "$here/servers.sh"
lua_skip_checks tools

fail() { echo "openresty_example: FAIL: $*"; exit 1; }

reg=demo
ctl() { "$SHMREGCTL" -r "$reg" --no-embedded "$@" >/dev/null ||
	fail "shmregctl $*"; }

shmregd_start "$reg"
ctl put svc/db 10.0.0.7:5432 --attr role=db --attr node=a
ctl put svc/cache 10.0.0.9:6379 --attr role=cache --attr node=a

example=$SHMREG_SOURCE_DIR/examples/openresty
export LD_LIBRARY_PATH=$LUA_BUILD_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
NGX_SUBST_LUADIR=$SHMREG_SOURCE_DIR/lua
NGX_SUBST_EXAMPLEDIR=$example
NGX_SUBST_REGISTRY=$SHMREG_DIR/shmreg.$reg
nginx_start "$example/nginx.conf.in"

workers=$(pgrep -P "$NGX_PID" | sort | paste -sd' ')
[ "$(echo "$workers" | wc -w)" = 2 ] || fail "nginx has workers '$workers'"

# GET /v/KEY once, on a new connection; sets STATUS, BODY, PID
fetch() {
	local hdr=$PWD/hdr body=$PWD/body
	STATUS=$(curl -sS --max-time 5 -D "$hdr" -o "$body" -w '%{http_code}' \
		"http://127.0.0.1:$NGX_PORT/v/$1") || fail "GET /v/$1: curl failed"
	BODY=$(cat "$body")
	PID=$(sed -n 's/^X-Worker-Pid: *\([0-9]*\).*/\1/ip' "$hdr")
}

# Request KEY until both workers have answered (at most 200 requests; with
# reuseport each new connection lands on either worker, so 200 on one
# alone is a 2^-199 chance).  Every answer must be STATUS WANT_BODY.
both_serve() { # KEY STATUS WANT_BODY WHAT
	local seen=" " i
	for i in $(seq 200); do
		fetch "$1"
		[ "$STATUS" = "$2" ] && [ "$BODY" = "$3" ] ||
			fail "$4: worker $PID answered $STATUS '$BODY' (want $2 '$3')"
		case " $workers " in
		*" $PID "*) ;;
		*) fail "$4: answer from pid '$PID', not a worker ($workers)" ;;
		esac
		case $seen in *" $PID "*) ;; *) seen="$seen$PID " ;; esac
		if [ "$(echo $seen | wc -w)" = 2 ]; then
			echo "$4: both workers ($seen) answered '$3' within $i requests"
			return 0
		fi
	done
	fail "$4: only worker(s)$seen answered in 200 requests"
}

both_serve svc/db 200 10.0.0.7:5432 "before the change"

# changed after the workers started: every request from now on sees it
ctl put svc/db 10.0.0.8:5432 --attr role=db --attr node=a
both_serve svc/db 200 10.0.0.8:5432 "after the change"
ctl put svc/new fresh
both_serve svc/new 200 fresh "a key put after the start"
ctl del svc/new
both_serve svc/new 404 "not found" "a deleted key"

list=$(curl -fsS --max-time 5 "http://127.0.0.1:$NGX_PORT/list?prefix=svc/") ||
	fail "GET /list"
[ "$list" = $'svc/cache=10.0.0.9:6379\nsvc/db=10.0.0.8:5432' ] ||
	fail "list: '$list'"
found=$(curl -fsS --max-time 5 "http://127.0.0.1:$NGX_PORT/find?node=a&role=db") ||
	fail "GET /find"
[ "$found" = "svc/db=10.0.0.8:5432" ] || fail "find: '$found'"
status=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' \
	"http://127.0.0.1:$NGX_PORT/find") || fail "GET /find without pairs"
[ "$status" = 400 ] || fail "find without pairs: $status, want 400"

# a restarted shmregd adopts the registry: the workers read on
shmregd_stop
shmregd_start "$reg"
ctl put svc/db 10.0.0.9:5432
both_serve svc/db 200 10.0.0.9:5432 "after shmregd restarted"

# a value larger than the arena makes the writer publish a grown segment
# (a handoff: a new file renamed over the registry's); the workers' handles
# follow it on their next read
ino=$(stat -c %i "$SHMREG_DIR/shmreg.$reg")
head -c 2000000 /dev/zero | tr '\0' x >"$PWD/blob"
ctl put blob --file "$PWD/blob"
[ "$(stat -c %i "$SHMREG_DIR/shmreg.$reg")" != "$ino" ] ||
	fail "a 2 MB value did not make a new segment (no handoff to test)"
ctl put svc/db 10.0.0.10:5432
both_serve svc/db 200 10.0.0.10:5432 "after a segment handoff"
size=$(curl -fsS --max-time 5 -o /dev/null -w '%{size_download}' \
	"http://127.0.0.1:$NGX_PORT/v/blob") || fail "GET /v/blob"
[ "$size" = 2000000 ] || fail "blob: $size bytes, want 2000000"

nginx_stop
shmregd_stop
if grep -E '\[(error|crit|alert|emerg)\]|exited on signal' \
	"$PWD/nginx/logs/error.log"; then
	fail "nginx logged errors"
fi
echo "openresty_example: all passed"
