#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# lua_module.sh - resty.shmreg inside Debian's nginx: fill a registry
# through shmregd, open it in init_by_lua (the master), and run the checks
# of t_module.lua in the worker (GET /t): get, info, list, find, children,
# attrs, revision, errors, the growing buffer, no allocation per get.  The
# library is found by its soname through LD_LIBRARY_PATH (the build tree),
# and that soname is the one the build gives libshmreg.  Then the README's
# Lua example, as it is written there, must print what it says.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
. "$here/servers.sh"
lua_skip_checks tools

fail() { echo "lua_module: FAIL: $*"; exit 1; }

# the soname the Lua module loads is the one the build produces
want=$(sed -n 's/^_M.SONAME = "\(.*\)"$/\1/p' "$SHMREG_SOURCE_DIR/lua/resty/shmreg.lua")
got=$(readelf -d "$LUA_BUILD_LIB/libshmreg.so" |
	sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ -n "$want" ] && [ "$want" = "$got" ] ||
	fail "resty.shmreg loads '$want', the build's soname is '$got'"

reg=luat
shmregd_start "$reg" demo
put() { "$SHMREGCTL" -r "$reg" --no-embedded put "$@" >/dev/null ||
	fail "shmregctl put $*"; }
put svc/db 10.0.0.7:5432 --attr role=db --attr node=a
put svc/cache 10.0.0.9:6379 --attr role=cache --attr node=a
put svc/ml ml --attr cap=gpu --attr cap=inference --attr role=ml
put svc/cpu cpu --attr cap=gpu
put app root
put app/x x --parent app
put app/y y --parent app
put empty ''
printf 'a\0b\377' | put bin -
biglen=100000
python3 -c "import sys; sys.stdout.write('0123456789' * ($biglen // 10))" \
	>"$PWD/big"
put big --file "$PWD/big"
put owned mine --owner $$
put ttl soon --ttl 1h
for i in $(seq -w 1 20); do put "many/$i" "value $i"; done
rev=$("$SHMREGCTL" -r "$reg" --no-embedded put rev/probe p) ||
	fail "put rev/probe"
total=$("$SHMREGCTL" -r "$reg" list --keys-only | wc -l)

lua_nginx_start "$SHMREG_DIR/shmreg.$reg"
lua_run_checks "/t?owner=$$&biglen=$biglen&rev=$rev&total=$total" lua_module
# nothing in the error log above notice level: no Lua error, no
# "bad callback", no worker crash
if grep -E '\[(error|crit|alert|emerg)\]|signal [0-9]+' \
	"$PWD/nginx/logs/error.log"; then
	fail "nginx logged errors"
fi
nginx_stop

# The README's example: its init_by_lua line at http level, the location
# in a server, against a "demo" registry holding its key.
"$SHMREGCTL" -r demo --no-embedded put svc/db/primary 10.0.0.7:5432 \
	>/dev/null || fail "put demo svc/db/primary"
snippet=$(sed -n '/^## From nginx (Lua)/,/^## /p' "$SHMREG_SOURCE_DIR/README.md" |
	sed -n '/^```nginx$/,/^```$/p' | sed '1d;$d')
want=$(echo "$snippet" | sed -n 's/.*-- \([0-9.:]*\)$/\1/p')
[ -n "$snippet" ] && [ -n "$want" ] || fail "README: no Lua example found"
{
	sed -n '1,/^http {/p' "$here/module.conf.in" | grep -v '^#'
	echo '	access_log off;'
	echo '	client_body_temp_path @PREFIX@/tmp/body;'
	echo '	lua_package_path "@LUADIR@/?.lua;;";'
	echo "$snippet" | sed -n 1p
	echo '	server {'
	echo '		listen 127.0.0.1:@PORT@;'
	echo '		location = /ready { return 200 "ready\n"; }'
	echo "$snippet" | sed 1d
	echo '	}'
	echo '}'
} >"$PWD/readme.conf.in"
nginx_start "$PWD/readme.conf.in"
out=$(http_get /db) || fail "README example: GET /db"
[ "$out" = "$want" ] || fail "README example printed '$out', want '$want'"
nginx_stop
shmregd_stop
echo "lua_module: all passed (the README example printed $want)"
