#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Description: every relative link in README.md and docs/*.md names a file
# that exists in the repository (a README pointing at missing docs is a bug).
set -euo pipefail
src=${SHMREG_SOURCE_DIR:?}
fail=0
n=0
for md in "$src"/README.md "$src"/docs/*.md; do
	[[ -f $md ]] || continue
	dir=$(dirname "$md")
	# [text](target) with a relative target; drop any #anchor.
	while read -r target; do
		target=${target%%#*}
		[[ -z $target ]] && continue
		n=$((n + 1))
		if [[ ! -e $dir/$target ]]; then
			echo "doc_links: FAIL: ${md#"$src"/} links to missing $target" >&2
			fail=1
		fi
	done < <(grep -oE '\]\([^)[:space:]]+\)' "$md" | sed 's/^](//; s/)$//' |
		grep -vE '^([a-z]+:|#|/)' || true)
done
((n > 0)) || { echo "doc_links: FAIL: no links found in README.md" >&2; exit 1; }
((fail == 0)) || exit 1
echo "doc_links: ok ($n links)"
