#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: docs/shmregd.service and docs/shmregd@.service pass
# `systemd-analyze verify` without a single warning (ExecStart pointed at
# the built shmregd, the Documentation= man page found in docs/man), a
# misspelt key in a copy does not (so the check can fail), both carry the
# settings docs/operations.md promises, and shmregd really speaks
# Type=notify: READY=1 once it serves, STOPPING=1 on SIGTERM.
set -u
export LC_ALL=C

src=${SHMREG_SOURCE_DIR:?run through ctest}
[ -n "${SHMREGD:-}" ] || { echo "SKIP: SHMREGD not set"; exit 77; }
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: no systemd-analyze (package systemd)"
	exit 77
fi

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmreg-units.XXXXXX") || exit 1
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/man/man8"
ln -s "$src/docs/man/shmregd.8" "$tmp/man/man8/shmregd.8"

# verify UNITFILE: no output at all, exit 0
verify() {
	local out
	out=$(cd "$tmp" && MANPATH=$tmp/man systemd-analyze verify "./$1" 2>&1)
	local rc=$?
	[ $rc -eq 0 ] && [ -z "$out" ] && return 0
	echo "$out"
	return 1
}

for u in shmregd.service shmregd@.service; do
	sed "s#/usr/sbin/shmregd#$SHMREGD#" "$src/docs/$u" >"$tmp/$u"
	for want in Type=notify RuntimeDirectory= PrivateTmp=no \
		    ProtectSystem=strict NoNewPrivileges=yes \
		    CapabilityBoundingSet= ExecReload=; do
		grep -q "^$want" "$tmp/$u" || fail "$u: no $want"
	done
done
verify shmregd.service || fail "shmregd.service does not verify"
# a template verifies as an instance of it
cp "$tmp/shmregd@.service" "$tmp/shmregd@demo.service"
verify shmregd@demo.service || fail "shmregd@demo.service does not verify"

sed 's/^ProtectClock=/ProtectClok=/' "$tmp/shmregd.service" >"$tmp/bad.service"
if verify bad.service >/dev/null; then
	fail "a misspelt key verifies: the check cannot fail"
fi

# Type=notify: the datagrams shmregd sends to $NOTIFY_SOCKET
if [ -x /usr/bin/python3 ]; then
	/usr/bin/python3 - "$SHMREGD" "$tmp" <<'PY' || fail "sd_notify"
import os, socket, subprocess, sys
shmregd, tmp = sys.argv[1], sys.argv[2]
path = os.path.join(tmp, "notify")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(20)
env = dict(os.environ, NOTIFY_SOCKET=path, SHMREG_DIR=tmp)
p = subprocess.Popen([shmregd, "--registry", "units", "--socket",
                      os.path.join(tmp, "d.sock"), "--metrics-listen",
                      "127.0.0.1:0"], env=env)
try:
    got = s.recv(256).decode()
    if "READY=1" not in got:
        sys.exit("first notification %r, want READY=1" % got)
    if not os.path.exists(os.path.join(tmp, "d.sock")):
        sys.exit("READY=1 before the socket exists")
    p.terminate()
    got = s.recv(256).decode()
    if "STOPPING=1" not in got:
        sys.exit("after SIGTERM %r, want STOPPING=1" % got)
    if p.wait(timeout=20) != 0:
        sys.exit("shmregd exit %d" % p.returncode)
finally:
    if p.poll() is None:
        p.kill()
        p.wait()
PY
fi

[ $fails -eq 0 ] || exit 1
echo "systemd units: all passed"
