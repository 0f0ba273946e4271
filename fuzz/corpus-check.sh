#!/bin/bash
# SPDX-License-Identifier: MIT
# corpus-check.sh GENERATOR REPLAY COMMITTED_DIR - regenerate a seed corpus
# into the test's scratch directory (the generator checks that every seed
# reads back), replay the fresh seeds through the fuzz entry point, and check
# that every seed the generator makes is also committed.
set -euo pipefail
gen=$1 replay=$2 committed=$3
out="${SHMREG_DIR:?}/corpus"

"$gen" "$out"
SHMREG_FUZZ_VARIANTS=${SHMREG_FUZZ_VARIANTS:-8} "$replay" "$out"

missing=0
for f in "$out"/*; do
	name=$(basename "$f")
	if [ ! -f "$committed/$name" ]; then
		echo "corpus-check: seed $name is not committed in $committed" \
			"(run: $gen $committed)" >&2
		missing=1
	fi
done
exit $missing
