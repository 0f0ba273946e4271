#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Description: install shmreg into a scratch prefix and build consumers against
# it with find_package(shmreg) (shared and static, C and C++) and with
# pkg-config; check the public headers stand alone as C and C++; run the
# README's writer and reader examples against a registry in $SHMREG_DIR.
set -euo pipefail

: "${SHMREG_BINARY_DIR:?}" "${SHMREG_SOURCE_DIR:?}" "${SHMREG_DIR:?}"
fail() { echo "install_consumer: FAIL: $*" >&2; exit 1; }
skip() { echo "install_consumer: SKIP: $*" >&2; exit 77; }

command -v g++ >/dev/null || skip "g++ is not installed"
command -v pkg-config >/dev/null || skip "pkg-config is not installed"

# Consumers of a sanitized build must use the same runtime (ASan refuses to
# start when its runtime is not the first library loaded).
san=()
if [[ -n "${SHMREG_SANITIZE:-}" ]]; then
	san=(-fsanitize="$SHMREG_SANITIZE" -fno-sanitize-recover=all)
fi
flags="${san[*]}"

prefix=$SHMREG_DIR/prefix
cmake --install "$SHMREG_BINARY_DIR" --prefix "$prefix" >install.log 2>&1 ||
	{ cat install.log >&2; fail "cmake --install"; }

for f in include/shmreg.h include/shmreg_inline.h include/shmreg_writer.h; do
	[[ -f $prefix/$f ]] || fail "$f not installed"
done
pcdir=$(dirname "$(find "$prefix" -name shmreg.pc -print -quit)")
[[ -f $pcdir/shmreg.pc && -f $pcdir/shmreg_writer.pc ]] ||
	fail "shmreg.pc / shmreg_writer.pc not installed"
cfg=$(find "$prefix" -name shmregConfig.cmake -print -quit)
[[ -n $cfg ]] || fail "shmregConfig.cmake not installed"

# The soname carries MAJOR.MINOR (0.x minors may break the ABI), and the
# installed names resolve to the real files.
hdr=$prefix/include/shmreg.h
ver=$(sed -n 's/^#define SHMREG_VERSION_MAJOR \([0-9]*\)$/\1/p' "$hdr").$(
	sed -n 's/^#define SHMREG_VERSION_MINOR \([0-9]*\)$/\1/p' "$hdr")
[[ $ver =~ ^[0-9]+\.[0-9]+$ ]] || fail "no version in shmreg.h ('$ver')"
for l in libshmreg libshmreg_writer; do
	so=$(find "$prefix" -name "$l.so" -print -quit)
	[[ -n $so ]] || fail "$l.so not installed"
	readelf -d "$so" >soname.txt
	sn=$(sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p' soname.txt)
	[[ $sn == "$l.so.$ver" ]] || fail "$l.so has soname '$sn', want $l.so.$ver"
	[[ -e $(dirname "$so")/$sn ]] || fail "$sn is not installed beside $l.so"
done

# 1. Each public header alone, as C (several standards, pedantic) and C++.
for h in shmreg.h shmreg_writer.h; do
	for std in c99 c11 gnu11; do
		echo "#include <$h>" | gcc -std=$std -Wall -Wextra -Werror \
			-pedantic -I"$prefix/include" -fsyntax-only -x c - ||
			fail "$h does not compile alone as $std"
		# optimising, the inline get (shmreg_inline.h) is compiled
		# too: with GCC and, when installed, Clang
		for cc in gcc clang; do
			command -v $cc >/dev/null || continue
			echo "#include <$h>" | $cc -std=$std -O2 -Wall -Wextra \
				-Werror -pedantic -I"$prefix/include" \
				-fsyntax-only -x c - ||
				fail "$h does not compile alone as $std -O2 ($cc)"
		done
	done
	for std in c++11 c++17; do
		echo "#include <$h>" | g++ -std=$std -Wall -Wextra -Werror \
			-pedantic -I"$prefix/include" -fsyntax-only -x c++ - ||
			fail "$h does not compile alone as $std"
	done
done

# 2. find_package(shmreg): shared, static, C++.
cmake -S "$SHMREG_SOURCE_DIR/tests/consumer" -B cm \
	-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
	>cm.log 2>&1 || { cat cm.log >&2; fail "consumer configure"; }
cmake --build cm >>cm.log 2>&1 || { cat cm.log >&2; fail "consumer build"; }

# The consumer must link the installed libraries, not the build tree's.
# (Outputs go to files: `cmd | grep -q` fails under pipefail when grep's
# early exit kills cmd with SIGPIPE.)
ldd cm/reader >ldd.txt
grep -q "$prefix/.*libshmreg\.so" ldd.txt ||
	{ cat ldd.txt >&2; fail "reader does not use the installed libshmreg.so"; }
ldd cm/reader_static >ldd_static.txt
if grep -q 'libshmreg' ldd_static.txt; then
	cat ldd_static.txt >&2
	fail "reader_static still needs libshmreg.so"
fi

# 3. pkg-config.
export PKG_CONFIG_PATH=$pcdir
[[ $(pkg-config --modversion shmreg) == "$(pkg-config --modversion shmreg_writer)" ]] ||
	fail "shmreg.pc and shmreg_writer.pc disagree on the version"
# shellcheck disable=SC2046,SC2086
gcc $flags $(pkg-config --cflags shmreg) "$SHMREG_SOURCE_DIR/tests/consumer/reader.c" \
	-o pc_reader $(pkg-config --libs shmreg) || fail "pkg-config shmreg build"
# shellcheck disable=SC2046,SC2086
gcc $flags $(pkg-config --cflags shmreg_writer) "$SHMREG_SOURCE_DIR/tests/consumer/writer.c" \
	-o pc_writer $(pkg-config --libs shmreg_writer) || fail "pkg-config shmreg_writer build"

# 4. Run them: the registry "demo" lives in $SHMREG_DIR (SHMREG_DIR is set).
expect="svc/db = 10.0.0.7:5432"
check_read() {
	local out
	out=$("$@") || fail "$* exited $?"
	[[ $out == "$expect" ]] || fail "$*: got '$out', want '$expect'"
}
cm/writer >/dev/null || fail "cm/writer"
[[ -f $SHMREG_DIR/shmreg.demo ]] || fail "writer did not create \$SHMREG_DIR/shmreg.demo"
check_read cm/reader
check_read cm/reader_static
rm -f "$SHMREG_DIR"/shmreg.demo*
cm/writer_static >/dev/null || fail "cm/writer_static"
check_read cm/reader
LD_LIBRARY_PATH=$(dirname "$(find "$prefix" -name libshmreg.so -print -quit)") \
	check_read ./pc_reader
LD_LIBRARY_PATH=$(dirname "$(find "$prefix" -name libshmreg.so -print -quit)") \
	./pc_writer >/dev/null || fail "pc_writer"
cm/headers_cxx || fail "headers_cxx"
# the inline get of the installed header, with GCC and, when installed,
# Clang (not in a sanitized build: Clang's sanitizer runtime is not the
# one the libraries were built with)
for cc in gcc clang; do
	command -v $cc >/dev/null || continue
	[[ $cc == clang && -n $flags ]] && continue
	# shellcheck disable=SC2046,SC2086
	$cc $flags -O2 $(pkg-config --cflags shmreg_writer) \
		"$SHMREG_SOURCE_DIR/tests/consumer/inline_get.c" -o inline_$cc \
		$(pkg-config --libs shmreg_writer) ||
		fail "inline_get build ($cc)"
	LD_LIBRARY_PATH=$(dirname "$(find "$prefix" -name libshmreg.so -print -quit)") \
		./inline_$cc >inline_$cc.out || fail "inline_get ($cc)"
	grep -qx "inline_get: ok" inline_$cc.out ||
		fail "inline_get ($cc) printed '$(cat inline_$cc.out)'"
done

# 5. Installed tools run from the prefix (their RPATH finds the libraries).
if [[ -x $prefix/bin/shmregctl ]]; then
	out=$("$prefix/bin/shmregctl" --registry demo get svc/db) ||
		fail "installed shmregctl get exited $?"
	[[ $out == *10.0.0.7:5432* ]] || fail "installed shmregctl get printed '$out'"
fi
for d in bin sbin; do
	if [[ -x $prefix/$d/shmregd ]]; then
		"$prefix/$d/shmregd" --help >/dev/null ||
			fail "installed $d/shmregd --help exited $?"
	fi
done

echo "install_consumer: ok"
