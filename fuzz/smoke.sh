#!/bin/bash
# SPDX-License-Identifier: MIT
# smoke.sh FUZZER CORPUS_DIR ARTIFACT_DIR - fuzz for a short time (the
# fuzz-smoke ctests).  libFuzzer adds the inputs it finds to its first corpus
# directory, so it gets a temporary copy: the source tree is never written.
# A crash, leak, timeout or OOM input is kept in ARTIFACT_DIR; copy it into
# CORPUS_DIR under a descriptive name to make it a regression test.
# Env: SHMREG_FUZZ_TIME (seconds, default 20).
set -euo pipefail
fuzzer=$1 corpus=$2 artifacts=$3
time=${SHMREG_FUZZ_TIME:-20}

if [ ! -d "$corpus" ] || [ -z "$(ls -A "$corpus")" ]; then
	echo "smoke.sh: no seed corpus in $corpus" >&2
	exit 1
fi
work=$(mktemp -d "${SHMREG_DIR:-${TMPDIR:-/tmp}}/fuzz-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$corpus/." "$work/corpus"
mkdir -p "$artifacts"

set -x
# -error_exitcode=1: libFuzzer's default for a crash is 77, which ctest
# takes for "skipped" (SKIP_RETURN_CODE): a crash must fail the test
"$fuzzer" -max_total_time="$time" -timeout=5 -rss_limit_mb=2048 \
	-error_exitcode=1 -timeout_exitcode=1 \
	-print_final_stats=1 -artifact_prefix="$artifacts/" "$work/corpus"
