#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Description: the exported symbols of libshmreg.so and libshmreg_writer.so,
# and the global symbols of libshmreg.a and libshmreg_writer.a, are exactly
# the public API: only shmreg_* names (no XXH*, no shm/ internals), every
# function declared in the headers is exported by the right library and has
# a man page; no shipped library contains a test hook (waitfile_debug_*),
# even as a local symbol; and libshmreg.so depends on libc alone (it may be
# preloaded).
set -euo pipefail

usage="usage: exports.sh libshmreg.so libshmreg_writer.so libshmreg.a libshmreg_writer.a"
reader=${1:?$usage}
writer=${2:?$usage}
reader_a=${3:?$usage}
writer_a=${4:?$usage}
inc=${SHMREG_SOURCE_DIR:?}/include
fail=0
bad() { echo "exports: FAIL: $*" >&2; fail=1; }

# Defined dynamic symbols, without the version-node (absolute) entries.
exported() {
	nm -D --defined-only "$1" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u
}
# Function names declared in a public header: "shmreg_xxx(" at a declaration.
declared() {
	grep -oE '\bshmreg_[a-z0-9_]+\(' "$1" | grep -v '^shmreg__' |
		tr -d '(' | sort -u
	# shmreg__* (two underscores): the inline get's parts, of which
	# shmreg_inline.h declares "extern" the ones the library exports for
	# it (part of the header's ABI, not API: no man page)
	if [[ $(basename "$1") == shmreg.h ]]; then
		sed -n 's/^extern [a-z_ *]*\b\(shmreg__[a-z0-9_]*\)(.*/\1/p' \
			"$(dirname "$1")/shmreg_inline.h" | sort -u
	fi
}

# Global symbols an archive defines: what a static consumer links against
# (and could collide with).  Weak ones count too.
archived() {
	nm -g --defined-only "$1" | awk 'NF == 3 { print $3 }' | sort -u
}

# check_api LIB SYMS HEADER: the names a library offers (SYMS) are exactly
# the functions HEADER declares for it: reader names (shmreg_* but not
# shmreg_writer_*) for shmreg.h, shmreg_writer_* for shmreg_writer.h.
check_api() {
	local lib=$1 syms=$2 hdr=$3 name decl s
	name=$(basename "$lib")
	decl=$(declared "$inc/$hdr")
	[[ -n $syms ]] || { bad "$name exports nothing"; return; }
	while read -r s; do
		[[ -z $s ]] && continue
		if [[ $hdr == shmreg.h ]]; then
			[[ $s == shmreg_* && $s != shmreg_writer_* ]] ||
				bad "$name exports '$s'"
		else
			[[ $s == shmreg_writer_* ]] || bad "$name exports '$s'"
		fi
	done <<<"$syms"
	# Every declared function exists in its library (a declared,
	# unexported function is a link error for every user)...
	for s in $decl; do
		[[ $hdr == shmreg_writer.h && $s != shmreg_writer_* ]] && continue
		grep -qx "$s" <<<"$syms" ||
			bad "$s is declared in $hdr but $name does not export it"
	done
	# ...and nothing is exported that the header does not declare.
	for s in $syms; do
		grep -qx "$s" <<<"$decl" ||
			bad "$name exports $s, which $hdr does not declare"
	done
}

r_syms=$(exported "$reader")
w_syms=$(exported "$writer")
check_api "$reader" "$r_syms" shmreg.h
check_api "$writer" "$w_syms" shmreg_writer.h
# The static archives: the same API (one localized object each, see
# cmake/ShmregArchive.cmake), so a static consumer sees no internal name.
ra_syms=$(archived "$reader_a")
wa_syms=$(archived "$writer_a")
check_api "$reader_a" "$ra_syms" shmreg.h
check_api "$writer_a" "$wa_syms" shmreg_writer.h
[[ $ra_syms == "$r_syms" ]] ||
	bad "libshmreg.a and libshmreg.so offer different symbols"
[[ $wa_syms == "$w_syms" ]] ||
	bad "libshmreg_writer.a and libshmreg_writer.so offer different symbols"

# Test hooks live in the test library only: not even a local copy here.
for lib in "$reader" "$writer" "$reader_a" "$writer_a"; do
	nm -a "$lib" 2>/dev/null >syms.txt || true
	if grep -q 'waitfile_debug_' syms.txt; then
		bad "$(basename "$lib") contains a test hook (waitfile_debug_*)"
	fi
done

# Every exported function has its man page (liburing style).
for s in $r_syms $w_syms; do
	[[ $s == shmreg__* ]] && continue # the inline get's, see declared()
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
echo "exports: ok ($n_r reader symbols, $n_w writer symbols, shared and static)"
