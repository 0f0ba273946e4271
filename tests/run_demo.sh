#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_demo.sh - scripts/run as a newcomer uses it: --help prints the help
# only, a re-run starts from the demo contents, "stop" removes the registry,
# and the README's read example finds its key.  Uses the built tools
# (SHMREG_RUN_BIN) and the test's scratch directory (SHMREG_RUN_DIR).
set -euo pipefail

fail() { echo "run_demo: FAIL: $*" >&2; exit 1; }

[ -n "${SHMREGCTL:-}" ] || { echo "run_demo: SHMREGCTL not set" >&2; exit 77; }
run=$SHMREG_SOURCE_DIR/scripts/run
scratch=$PWD/demo
export SHMREG_RUN_BIN
SHMREG_RUN_BIN=$(dirname "$SHMREGCTL")
export SHMREG_RUN_DIR=$scratch SHMREG_DIR=$scratch
unset SHMREG_SOCKET
ctl() { "$SHMREGCTL" -r demo "$@"; }
trap '"$run" stop >/dev/null 2>&1 || true' EXIT

help=$("$run" --help)
case $help in
*"set -euo"*) fail "--help prints code: $help" ;;
"scripts/run - build shmreg"*) ;;
*) fail "--help: $help" ;;
esac
out=$("$run" bogus 2>&1) && fail "bogus argument accepted"
[ "$out" = "Usage: scripts/run [stop|--help]" ] || fail "bogus: $out"

"$run" >"$PWD/run1.log" || fail "scripts/run failed: $(cat "$PWD/run1.log")"
[ "$(ctl get svc/db/primary)" = "10.0.0.7:5432" ] || fail "demo contents"
sock=
[ -S "$scratch/shmregd.sock" ] && sock=$scratch/shmregd.sock
if [ -n "$sock" ]; then
	ctl --socket "$sock" put extra 1 >/dev/null
else
	ctl --embedded put extra 1 >/dev/null
fi
[ "$(ctl get extra)" = 1 ] || fail "extra put"

# the README's examples: the key it reads is in the demo (with the length
# it passes), and its embedded writer does not open the daemon's registry
readme=$SHMREG_SOURCE_DIR/README.md
set -- $(sed -n 's/.*shmreg_get(r, "\([^"]*\)", \([0-9]*\),.*/\1 \2/p' "$readme")
[ $# -eq 2 ] || fail "README: no shmreg_get example found"
[ "${#1}" -eq "$2" ] || fail "README: key $1 is not $2 bytes"
ctl get "$1" >/dev/null || fail "README reads $1, which the demo lacks"
wreg=$(sed -n 's/.*shmreg_writer_open("\([^"]*\)".*/\1/p' "$readme")
[ -n "$wreg" ] && [ "$wreg" != demo ] ||
	fail "README's writer opens '$wreg' (the demo daemon owns demo)"
set -- $(sed -n 's/.*shmreg_writer_put(w, "\([^"]*\)", \([0-9]*\),.*/\1 \2/p' "$readme")
[ "${#1}" -eq "$2" ] || fail "README: writer key $1 is not $2 bytes"

# a re-run drops what was put since
"$run" >"$PWD/run2.log" || fail "second run: $(cat "$PWD/run2.log")"
if out=$(ctl get extra 2>&1); then
	fail "re-run kept the old contents (extra = $out)"
fi
[ "$(ctl list --keys-only | wc -l)" -eq 5 ] || fail "re-run: $(ctl list)"

# stop removes the registry's files
out=$("$run" stop)
case $out in *"removed the demo registry"*) ;; *) fail "stop: $out" ;; esac
for f in shmreg.demo shmreg.demo.lock shmreg.demo.wait; do
	[ ! -e "$scratch/$f" ] || fail "stop left $f"
done
set +e
ctl get svc/db/primary >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "registry still readable after stop ($rc)"
echo "run_demo: all passed"
