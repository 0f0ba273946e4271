# SPDX-License-Identifier: MIT
# servers.sh - start and stop the real servers of the Lua tests: Debian's
# nginx with the Lua module, and shmregd.  Sourced by the tests (bash).
#
# Every server is started in the foreground of a background job (nginx with
# "daemon off", shmregd as it is), remembered by pid, and stopped by that
# pid in an EXIT trap, so a failing test leaves nothing running.  Ports
# are chosen free on 127.0.0.1 (bind port 0), and a start that lost its
# port to a parallel test is retried on a new one.
#
# Functions:
#   lua_skip_checks [tools]   exit 77 unless nginx, its Lua module, curl,
#                             python3 and an unsanitized libshmreg are
#                             there (and, with "tools", shmregd/shmregctl)
#   shmregd_start REG...      start shmregd for the registries, wait for READY
#   shmregd_stop              SIGTERM it and reap it
#   nginx_start TEMPLATE [DIR]  fill @PORT@, @PREFIX@, @MODULES@, @USER@
#                             and the NGX_SUBST_* variables into TEMPLATE,
#                             start nginx -p PREFIX -c CONF (PREFIX: DIR
#                             under $PWD, default "nginx"), wait until it
#                             answers GET /ready; sets NGX_PORT, NGX_PID.
#                             Several may run at once (the benchmark's)
#   nginx_stop [PID]          SIGQUIT (graceful), then reap; default the
#                             last one started
#   lua_nginx_start FILE      nginx_start of tests/lua/module.conf.in (one
#                             worker: t_module.lua on /t, t_cache.lua on
#                             /c) against the registry file FILE
#   lua_run_checks PATH WHAT  GET PATH, whose handler runs tcheck.lua checks;
#                             print what it says, exit 1 unless its last
#                             line is "ok N"

NGINX=${NGINX:-/usr/sbin/nginx}
NGX_MODDIR=${NGX_MODDIR:-/usr/lib/nginx/modules}
NGX_PID= NGX_PORT= SHMREGD_PID=
_ngx_pids=() # every nginx started and not yet stopped
LUA_BUILD_LIB=$SHMREG_BINARY_DIR/reader

# Stop nginx @1 (its master's pid) even when the test failed: SIGTERM,
# which makes the master stop its workers and exit; if it has not within
# 5 s, SIGKILL the master and the workers it had (by their pids: a killed
# master leaves its workers running).
_nginx_kill() {
	local workers t
	workers=$(pgrep -P "$1")
	kill -TERM "$1" 2>/dev/null
	for t in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.05
	done
	# shellcheck disable=SC2086
	kill -KILL "$1" $workers 2>/dev/null
	wait "$1" 2>/dev/null
}

_servers_cleanup() {
	local p
	for p in "${_ngx_pids[@]}"; do _nginx_kill "$p"; done
	[ -n "$SHMREGD_PID" ] && kill -KILL "$SHMREGD_PID" 2>/dev/null
	wait 2>/dev/null
	[ -n "${_servers_tmp:-}" ] && rm -rf "$_servers_tmp"
}
trap _servers_cleanup EXIT

lua_skip_checks() {
	if [ -n "${SHMREG_SANITIZE:-}" ]; then
		# nginx is not built with the sanitizer, whose runtime must be
		# the first library of the process: a sanitized libshmreg
		# cannot be loaded into it.
		echo "SKIP: sanitized build ($SHMREG_SANITIZE): libshmreg cannot be loaded into nginx"
		exit 77
	fi
	local f
	for f in "$NGINX" "$NGX_MODDIR/ngx_http_lua_module.so" \
		 "$NGX_MODDIR/ndk_http_module.so"; do
		if [ ! -e "$f" ]; then
			echo "SKIP: $f missing (apt-get install nginx-light libnginx-mod-http-lua)"
			exit 77
		fi
	done
	command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
	command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
	if [ "${1:-}" = tools ] &&
	   { [ -z "${SHMREGD:-}" ] || [ -z "${SHMREGCTL:-}" ]; }; then
		echo "SKIP: shmregd or shmregctl not built"
		exit 77
	fi
	_servers_tmp=$(mktemp -d /tmp/shmreg-lua.XXXXXX)
	chmod 0755 "$_servers_tmp"
	export SHMREG_SOCKET=$_servers_tmp/shmregd.sock
	unset XDG_RUNTIME_DIR
}

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

shmregd_start() {
	local args=() r fifo=$_servers_tmp/ready line=
	for r in "$@"; do args+=(-r "$r"); done
	rm -f "$fifo" && mkfifo "$fifo"
	"$SHMREGD" "${args[@]}" -s "$SHMREG_SOCKET" -q --ready-fd 3 \
		3>"$fifo" 2>>"$PWD/shmregd.err" &
	SHMREGD_PID=$!
	# READY\n, or end of file when the daemon died before serving
	read -r -t 20 line <"$fifo" || true
	if [ "$line" != READY ]; then
		wait "$SHMREGD_PID"
		local rc=$?
		SHMREGD_PID=
		[ $rc = 69 ] && { echo "SKIP: shmregd: no usable io_uring"; exit 77; }
		echo "FAIL: shmregd did not start (exit $rc): $(cat "$PWD/shmregd.err")"
		exit 1
	fi
}

shmregd_stop() {
	[ -n "$SHMREGD_PID" ] || return 0
	kill -TERM "$SHMREGD_PID"
	wait "$SHMREGD_PID" 2>/dev/null
	SHMREGD_PID=
}

# curl with a deadline; prints the body, fails on a non-2xx status
http_get() {
	curl -fsS --max-time 5 "http://127.0.0.1:$NGX_PORT$1"
}

_nginx_fill() { # TEMPLATE PREFIX PORT > conf
	local user=
	# As root, the master would run the workers as nobody; run them as
	# the test's user, who owns the scratch files they read.
	[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
	local s=("-e" "s|@PORT@|$3|g" "-e" "s|@PREFIX@|$2|g"
		 "-e" "s|@MODULES@|$NGX_MODDIR|g" "-e" "s|@USER@|$user|g")
	local v
	for v in ${!NGX_SUBST_*}; do
		s+=("-e" "s|@${v#NGX_SUBST_}@|${!v}|g")
	done
	sed "${s[@]}" "$1"
}

nginx_start() {
	local tmpl=$1 prefix=$PWD/${2:-nginx} attempt deadline
	mkdir -p "$prefix/logs" "$prefix/tmp"
	for attempt in 1 2 3 4 5; do
		NGX_PORT=$(free_port)
		_nginx_fill "$tmpl" "$prefix" "$NGX_PORT" >"$prefix/nginx.conf"
		: >"$prefix/logs/error.log"
		"$NGINX" -p "$prefix" -c "$prefix/nginx.conf" \
			-e "$prefix/logs/error.log" &
		NGX_PID=$!
		_ngx_pids+=("$NGX_PID")
		deadline=$((SECONDS + 15))
		while [ $SECONDS -lt $deadline ]; do
			if ! kill -0 "$NGX_PID" 2>/dev/null; then
				break
			fi
			if curl -fsS --max-time 1 -o /dev/null \
				"http://127.0.0.1:$NGX_PORT/ready" 2>/dev/null; then
				return 0
			fi
			sleep 0.05
		done
		_nginx_kill "$NGX_PID"
		_ngx_forget "$NGX_PID"
		NGX_PID=
		# lost the port to another test: take a new one
		grep -q 'Address already in use' "$prefix/logs/error.log" ||
			break
	done
	echo "FAIL: nginx did not start; its log:"
	cat "$prefix/logs/error.log"
	exit 1
}

_ngx_forget() { # PID: no longer one to stop at exit
	local p keep=()
	for p in "${_ngx_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	_ngx_pids=("${keep[@]}")
}

nginx_stop() {
	local pid=${1:-$NGX_PID}
	[ -n "$pid" ] || return 0
	kill -QUIT "$pid"
	wait "$pid" 2>/dev/null
	_ngx_forget "$pid"
	[ "$pid" = "$NGX_PID" ] && NGX_PID=
	return 0
}

lua_nginx_start() {
	export LD_LIBRARY_PATH=$LUA_BUILD_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	NGX_SUBST_LUADIR=$SHMREG_SOURCE_DIR/lua
	NGX_SUBST_TESTDIR=$SHMREG_SOURCE_DIR/tests/lua
	NGX_SUBST_REGISTRY=$1
	NGX_SUBST_BUILDLIB=$LUA_BUILD_LIB
	nginx_start "$SHMREG_SOURCE_DIR/tests/lua/module.conf.in"
}

lua_run_checks() {
	local out
	out=$(http_get "$1") || {
		echo "FAIL: GET $1: $(tail -20 "$PWD/nginx/logs/error.log")"
		exit 1
	}
	echo "$2: $out"
	case $(echo "$out" | tail -1) in
	"ok "[1-9]*) ;;
	*) echo "FAIL: $2: the checks in nginx failed"; exit 1 ;;
	esac
}
