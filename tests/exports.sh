#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Description: the exported symbols of libshmreg.so and libshmreg_writer.so
# are exactly the public API: only shmreg_* names (no XXH*, no shm/
# internals), every function declared in the headers is exported by the right
# library and has a man page, and libshmreg.so depends on libc alone (it may
# be preloaded).
set -euo pipefail

reader=${1:?usage: exports.sh libshmreg.so libshmreg_writer.so}
writer=${2:?}
inc=${SHMREG_SOURCE_DIR:?}/include
fail=0
bad() { echo "exports: FAIL: $*" >&2; fail=1; }

# Defined dynamic symbols, without the version-node (absolute) entries.
exported() {
	nm -D --defined-only "$1" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u
}
# Function names declared in a public header: "shmreg_xxx(" at a declaration.
declared() {
	grep -oE '\bshmreg_[a-z0-9_]+\(' "$1" | tr -d '(' | sort -u
}

r_syms=$(exported "$reader")
w_syms=$(exported "$writer")
[[ -n $r_syms ]] || bad "$reader exports nothing"
[[ -n $w_syms ]] || bad "$writer exports nothing"

while read -r s; do
	[[ -z $s ]] && continue
	[[ $s == shmreg_* && $s != shmreg_writer_* ]] ||
		bad "libshmreg.so exports '$s'"
done <<<"$r_syms"
while read -r s; do
	[[ -z $s ]] && continue
	[[ $s == shmreg_writer_* ]] || bad "libshmreg_writer.so exports '$s'"
done <<<"$w_syms"

# Every declared function exists in its library (a declared, unexported
# function is a link error for every user).
for s in $(declared "$inc/shmreg.h"); do
	grep -qx "$s" <<<"$r_syms" || bad "$s is declared in shmreg.h but not exported"
done
for s in $(declared "$inc/shmreg_writer.h"); do
	[[ $s == shmreg_writer_* ]] || continue
	grep -qx "$s" <<<"$w_syms" ||
		bad "$s is declared in shmreg_writer.h but not exported"
done
# ...and nothing is exported that the headers do not declare.
for s in $r_syms; do
	grep -qx "$s" <<<"$(declared "$inc/shmreg.h")" ||
		bad "libshmreg.so exports $s, which shmreg.h does not declare"
done
for s in $w_syms; do
	grep -qx "$s" <<<"$(declared "$inc/shmreg_writer.h")" ||
		bad "libshmreg_writer.so exports $s, which shmreg_writer.h does not declare"
done

# Every exported function has its man page (liburing style).
for s in $r_syms $w_syms; do
	[[ -f $SHMREG_SOURCE_DIR/docs/man/$s.3 ]] ||
		bad "$s is exported but docs/man/$s.3 does not exist"
done

# libshmreg.so needs libc only (sanitizer runtimes aside).
while read -r lib; do
	case $lib in
	libc.so.*|ld-linux*|libasan.so.*|libubsan.so.*|libtsan.so.*) ;;
	*) bad "libshmreg.so needs $lib (it must depend on libc alone)" ;;
	esac
done < <(readelf -d "$reader" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

n_r=$(wc -w <<<"$r_syms")
n_w=$(wc -w <<<"$w_syms")
if ((fail)); then
	exit 1
fi
echo "exports: ok ($n_r reader symbols, $n_w writer symbols)"
