#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# lua_cache.sh - resty.shmreg's value cache inside Debian's nginx: a worker
# caches values (t_cache.lua, GET /c?step=NAME), and between the steps this
# script changes the registry through embedded writers (shmregctl): an
# expired key (with no commit since it was cached), a changed and a deleted
# one must read as without the cache, a segment handoff
# must keep the cache valid, a registry removed and made again (its
# revisions start over) must not be served from an old handle's cache,
# and the entry and byte caps must hold.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
. "$here/servers.sh"
lua_skip_checks tools

fail() { echo "lua_cache: FAIL: $*"; exit 1; }

reg=luacache
ctl() { "$SHMREGCTL" -r "$reg" --embedded "$@" >/dev/null ||
	fail "shmregctl $*"; }

# step NAME: run the worker's checks of step NAME
step() { lua_run_checks "/c?step=$1" "$1"; }

# wait_absent KEY: until shmregctl no longer finds KEY (it expired), at
# most 20 s
wait_absent() {
	local deadline=$((SECONDS + 20))
	while "$SHMREGCTL" -r "$reg" get "$1" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || fail "$1 did not expire"
		sleep 0.1
	done
}

ctl put k5 v5 # first: revision 1
ctl put k1 v1
ctl put k2 v2
ctl put k4 v4
ctl put k3 v3 --ttl 8s

lua_nginx_start "$SHMREG_DIR/shmreg.$reg"
step open

# k3 expires with no commit at all (no writer runs to remove it)
wait_absent k3
step expired
ctl put k1 v1-new
ctl del k2
step changed

ino=$(stat -c %i "$SHMREG_DIR/shmreg.$reg")
head -c 2000000 /dev/zero | tr '\0' x >"$PWD/blob"
ctl put blob --file "$PWD/blob"
[ "$(stat -c %i "$SHMREG_DIR/shmreg.$reg")" != "$ino" ] ||
	fail "a 2 MB value did not make a new segment (no handoff to test)"
ctl put after a
step handoff

"$SHMREGCTL" rm-registry "$reg" || fail "rm-registry $reg"
ctl put k5 v5-recreated
step recreated

for i in $(seq -w 1 10); do ctl put "cap/$i" "value-$i"; done
step caps

nginx_stop
if grep -E '\[(error|crit|alert|emerg)\]|exited on signal' \
	"$PWD/nginx/logs/error.log"; then
	fail "nginx logged errors"
fi
echo "lua_cache: all passed"
