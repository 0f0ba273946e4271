#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Description: `cmake --install` puts the Python module where Debian's
# /usr/bin/python3 finds it - <prefix>/lib/python3/dist-packages for prefix
# /usr, <prefix>/lib/python3.X/dist-packages for /usr/local - both on that
# interpreter's sys.path, and the installed module imports and works on its
# own (it links the static libraries: no libshmreg.so needed).
set -euo pipefail
fail() { echo "python_install: FAIL: $*" >&2; exit 1; }
py=${SHMREG_PYTHON:?} bin=${SHMREG_BINARY_DIR:?}
# a sanitized module needs its runtime preloaded into the interpreter
run_py() { env ${SHMREG_PY_PRELOAD:+LD_PRELOAD=$SHMREG_PY_PRELOAD} "$py" "$@"; }
dest=$PWD/destdir
ver=$(run_py -c 'import sys; print("%d.%d" % sys.version_info[:2])')
syspath=$(run_py -c 'import sys; print("\n".join(sys.path))')

for prefix in /usr /usr/local; do
	case $prefix in
	/usr) dir=$prefix/lib/python3/dist-packages ;;
	*) dir=$prefix/lib/python$ver/dist-packages ;;
	esac
	rm -rf "$dest"
	DESTDIR=$dest cmake --install "$bin" --component python \
		--prefix "$prefix" >install.log 2>&1 ||
		{ cat install.log >&2; fail "cmake --install --prefix $prefix"; }
	so=$(find "$dest" -name 'shmreg.cpython-*.so')
	[[ $so == "$dest$dir"/shmreg.cpython-*.so ]] ||
		fail "prefix $prefix: installed '$so', want it in $dir"
	grep -qx "$dir" <<<"$syspath" ||
		fail "$dir is not on $py's sys.path"
	# from the installed directory only: nothing of the build tree
	out=$(cd / && PYTHONPATH="$dest$dir" run_py -c '
import shmreg, sys
w = shmreg.Writer("installed", truncate=True)
w.put("k", b"from the installed module")
print(shmreg.__file__, shmreg.open("installed")["k"].decode())
w.close()') || fail "prefix $prefix: the installed module does not work"
	[[ $out == "$dest$dir/"*" from the installed module" ]] ||
		fail "prefix $prefix: printed '$out'"
	echo "python_install: prefix $prefix -> $dir"
done
if ldd "$so" | grep -q libshmreg; then
	fail "the module links libshmreg dynamically"
fi
echo "python_install: ok"
