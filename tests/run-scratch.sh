#!/bin/sh
# SPDX-License-Identifier: MIT
# run-scratch.sh DIR CMD ARGS... - empty the test's scratch directory DIR
# (its SHMREG_DIR), then run the test in it.  exec keeps the test's pid and
# exit status, so ctest's timeout and SKIP_RETURN_CODE apply to the test itself.
set -e
dir=$1
shift
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
exec "$@"
