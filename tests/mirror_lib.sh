# SPDX-License-Identifier: MIT
# mirror_lib.sh - sourced by the etcd mirror tests: a 3-member etcd cluster
# on free loopback ports (data under the test's scratch directory), shmregd
# mirrors, and comparisons against etcd's range.  Every process started
# here is stopped by its pid on exit, whatever happened.
set -u
if [ ! -x /usr/bin/etcd ] || [ ! -x /usr/bin/etcdctl ]; then
	echo "SKIP: etcd-server / etcd-client not installed"
	exit 77
fi
. "$(dirname "${BASH_SOURCE[0]}")/mirror_common.sh"
export ETCDCTL_API=3

# Six free loopback ports (bound and released by the kernel's choice; a
# collision with a parallel test makes etcd fail to start, and the caller
# retries with new ones).
free_ports() {
	python3 -c '
import socket
ss = []
for _ in range(6):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}

declare -a cport pport epid
start_member() { # I (1..3): start member I with its own data dir
	local i=$1
	etcd --name "m$i" --data-dir "$scratch/etcd$i" \
		--listen-client-urls "http://127.0.0.1:${cport[$i]}" \
		--advertise-client-urls "http://127.0.0.1:${cport[$i]}" \
		--listen-peer-urls "http://127.0.0.1:${pport[$i]}" \
		--initial-advertise-peer-urls "http://127.0.0.1:${pport[$i]}" \
		--initial-cluster "$cluster" --initial-cluster-token "$token" \
		--experimental-watch-progress-notify-interval 1s \
		>>"$scratch/etcd$i.log" 2>&1 &
	epid[$i]=$!
	pids+=("$!")
}
stop_member() { # I [SIGNAL]
	kill "-${2:-TERM}" "${epid[$1]}" 2>/dev/null
	wait "${epid[$1]}" 2>/dev/null
}
ep() { # I: client URL of member I
	echo "http://127.0.0.1:${cport[$1]}"
}
all_eps="" 
ectl() { # etcdctl against every member
	etcdctl --endpoints="$all_eps" --dial-timeout=3s --command-timeout=10s \
		"$@"
}
start_cluster() {
	local try ports i
	for try in 1 2 3; do
		read -r -a ports <<<"$(free_ports)"
		for i in 1 2 3; do
			cport[$i]=${ports[$((i - 1))]}
			pport[$i]=${ports[$((i + 2))]}
			rm -rf "$scratch/etcd$i"
		done
		token="t$$-$try"
		cluster="m1=http://127.0.0.1:${pport[1]},m2=http://127.0.0.1:${pport[2]},m3=http://127.0.0.1:${pport[3]}"
		all_eps="$(ep 1),$(ep 2),$(ep 3)"
		for i in 1 2 3; do start_member "$i"; done
		for _ in $(seq 100); do
			if ectl endpoint health >/dev/null 2>&1 &&
			   ectl put /__probe x >/dev/null 2>&1; then
				return 0
			fi
			sleep 0.2
		done
		for i in 1 2 3; do stop_member "$i" KILL; done
	done
	echo "FAIL: no etcd cluster came up"
	exit 1
}

declare -A dpid
start_mirror() { # NAME URLS [shmregd options...]: serve registry NAME
	local name=$1 urls=$2
	shift 2
	"$SHMREGD" -r "$name" -s "$scratch/$name.sock" --etcd "$urls" \
		--etcd-prefix /t/ --etcd-timeout 1.5s \
		--etcd-stall-timeout 3s "$@" 2>>"$scratch/$name.err" &
	dpid[$name]=$!
	pids+=("$!")
	for _ in $(seq 200); do
		[ -S "$scratch/$name.sock" ] &&
			"$SHMREGCTL" -r "$name" --socket "$scratch/$name.sock" \
				ping >/dev/null 2>&1 && return 0
		kill -0 "${dpid[$name]}" 2>/dev/null || break
		sleep 0.05
	done
	fail "shmregd $name did not start"; cat "$scratch/$name.err"
	exit 1
}
stop_mirror() { # NAME [SIGNAL]: a clean stop must exit 0 (sanitizers)
	local rc
	kill "-${2:-TERM}" "${dpid[$1]}" 2>/dev/null
	wait "${dpid[$1]}" 2>/dev/null
	rc=$?
	if [ "${2:-TERM}" = TERM ] && [ "$rc" != 0 ]; then
		fail "shmregd $1 exited with status $rc"
		tail -30 "$scratch/$1.err"
	fi
}
sctl() { # NAME ARGS...: shmregctl on registry NAME through its daemon
	local name=$1
	shift
	"$SHMREGCTL" -r "$name" --socket "$scratch/$name.sock" "$@"
}

# etcd's range of /t/ (without shmreg's own .shmreg/ keys) and the
# registry's contents as "key value mod create" lines, sorted: what the
# mirror must equal.
etcd_view() {
	ectl get --prefix /t/ -w json | python3 -c '
import base64, json, sys
d = json.load(sys.stdin)
for kv in d.get("kvs", []):
    k = base64.b64decode(kv["key"]).decode()[3:]
    if k.startswith(".shmreg/"):
        continue  # attribute sidecars: no entries of their own
    v = base64.b64decode(kv.get("value", "")).decode()
    print(k, v, kv["mod_revision"], kv["create_revision"])' | sort
}
mirror_view() { # NAME
	"$SHMREGCTL" -r "$1" list -j | python3 -c '
import json, sys
for l in sys.stdin:
    e = json.loads(l)
    print(e["key"], e["value"], e["mod_rev"], e["create_rev"])' | sort
}
# Wait (10 s at most) until registry NAME equals etcd's range exactly.
converge() { # NAME WHAT
	local e m end=$((SECONDS + 10))
	while [ "$SECONDS" -lt "$end" ]; do
		e=$(etcd_view) && m=$(mirror_view "$1") && [ "$e" = "$m" ] &&
			return 0
		sleep 0.1
	done
	fail "$2: $1 differs from etcd's range"
	diff <(echo "$e") <(echo "$m") | head -20
	return 1
}

etcd_rev() { # etcd's current revision
	ectl get /__probe -w json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'
}
mod_of() { # ETCD-KEY: its mod_revision ("" when absent)
	ectl get "$1" -w json | python3 -c '
import json,sys
kvs = json.load(sys.stdin).get("kvs", [])
print(kvs[0]["mod_revision"] if kvs else "")'
}
# Stop mirrors NAME... (a clean stop must exit 0) and end the test: PASS,
# or the tail of each one's log and exit 1 when something failed.
finish() { # NAME...
	local n
	for n in "$@"; do stop_mirror "$n"; done
	if [ "$fails" != 0 ]; then
		for n in "$@"; do echo "== $n.err"; tail -20 "$scratch/$n.err"; done
		exit 1
	fi
	echo "PASS"
	exit 0
}
