# SPDX-License-Identifier: MIT
# mirror_common.sh - sourced by every etcd mirror test (mirror_lib.sh too):
# skip without the built daemon and CLI, a private SHMREG_DIR under the
# test's scratch directory, fail() counting failures, and pids[] of the
# processes the test starts, each stopped by its pid on exit, whatever
# happened.
set -u
if [ -z "${SHMREGD:-}" ] || [ -z "${SHMREGCTL:-}" ]; then
	echo "SKIP: no shmregd or shmregctl built"
	exit 77
fi
scratch=${SHMREG_DIR:?}
export SHMREG_DIR=$scratch/shm
mkdir -p "$SHMREG_DIR"
unset SHMREG_SOCKET XDG_RUNTIME_DIR
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -9 "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null
	done
}
trap cleanup EXIT
