#!/bin/bash
# SPDX-License-Identifier: MIT
# Description: every function declared in include/*.h has a section-3 man
# page (its own, or an alias: a symlink to a shared one) whose SYNOPSIS
# carries the
# header's #include and its exact prototype; no page documents a function
# that no longer exists; shmreg.3 lists every function; and every page
# formats without a warning (from groff; from man when groff is missing);
# and every long option of shmregd and shmregctl is in their man pages.
#
# Usage: man.sh [SOURCE_DIR]   (default: $SHMREG_SOURCE_DIR, set by ctest)
# Exit 0 pass, 1 fail, 77 skip (only when there is nothing to check at all).

set -u
export LC_ALL=C

src=${1:-${SHMREG_SOURCE_DIR:-}}
if [ -z "$src" ] || [ ! -d "$src/include" ]; then
	echo "SKIP: no source directory (give it as \$1 or SHMREG_SOURCE_DIR)"
	exit 77
fi
mandir=$src/docs/man

fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmreg-man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
# Alias pages are symlinks (man -l follows them in the source tree, which
# a `.so man3/X.3` stub did not); a man3 link keeps any `.so` resolvable.
ln -s "$mandir" "$tmp/man3"

# An alias page: a symlink (or a .so stub) to the page that documents it.
is_alias() {
	[ -L "$1" ] || grep -q '^\.so' "$1"
}

# One declaration per line: comments and preprocessor lines removed,
# whitespace collapsed, split at ; { and }.
declarations() {
	awk '
	{
		line = $0; out = ""
		while (length(line)) {
			if (incomment) {
				i = index(line, "*/")
				if (!i) { line = ""; break }
				line = substr(line, i + 2); incomment = 0
				continue
			}
			i = index(line, "/*"); j = index(line, "//")
			if (j && (!i || j < i)) {
				out = out substr(line, 1, j - 1); break
			}
			if (!i) { out = out line; break }
			out = out substr(line, 1, i - 1) " "
			line = substr(line, i + 2); incomment = 1
		}
		if (out ~ /^[ \t]*#/)
			next
		buf = buf " " out
	}
	END {
		gsub(/[ \t]+/, " ", buf)
		n = split(buf, part, /[;{}]/)
		for (k = 1; k <= n; k++) {
			p = part[k]
			sub(/^ /, "", p); sub(/ $/, "", p)
			if (p != "") print p
		}
	}' "$1"
}

# The prototypes of a header, normalised as "type name(args);".
prototypes() {
	declarations "$1" |
	grep -E '^[A-Za-z_][A-Za-z0-9_ *]*[ *]shmreg_[a-z0-9_]+ ?\(' |
	grep -v '^typedef ' |
	sed -E 's/\( /(/g; s/ \)/)/g; s/ ,/,/g; s/ \(/(/; s/$/;/'
}

# The page that documents a page: itself, or the target of its symlink or
# .so line.
real_page() {
	local target
	if [ -L "$1" ]; then
		target=$(readlink "$1")
	else
		target=$(sed -n 's/^\.so[ \t]\{1,\}man3\/\([^ \t]*\)$/\1/p' "$1" | head -n1)
	fi
	if [ -n "$target" ]; then
		echo "$mandir/$target"
	else
		echo "$1"
	fi
}

have_groff=0
have_man=0
command -v groff >/dev/null 2>&1 && have_groff=1
command -v man >/dev/null 2>&1 && have_man=1

# Format every page once: groff's warnings fail the test, and the plain
# text of each real page's SYNOPSIS (no overstriking, one line) is kept for
# the prototype checks.  Without groff, man (man-db) checks the formatting.
declare -A synopsis
if [ $have_groff = 1 ] || [ $have_man = 1 ]; then
	for page in "$mandir"/*.3; do
		[ -f "$page" ] || continue
		rel=man3/$(basename "$page")
		if [ $have_groff = 1 ]; then
			text=$(cd "$tmp" && groff -man -ww -Tascii -P-cbou -rLL=250n \
			       "$rel" 2>"$tmp/warn")
			is_alias "$page" ||
				synopsis[$page]=$(printf '%s\n' "$text" |
				    sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | tr -s ' \n' '  ')
		else
			(cd "$tmp" && MANWIDTH=80 man --warnings -l -Tutf8 "$rel" \
			 >/dev/null 2>"$tmp/warn")
		fi
		[ -s "$tmp/warn" ] &&
			fail "formatting $rel warns:"$'\n'"$(cat "$tmp/warn")"
	done
fi

nfunc=0
declare -A declared        # every function of include/*.h
for hdr in "$src"/include/*.h; do
	h=$(basename "$hdr")
	protos=$(prototypes "$hdr")
	[ -n "$protos" ] || continue
	while IFS= read -r proto; do
		f=$(printf '%s\n' "$proto" |
		    sed -E 's/^[^(]*[ *](shmreg_[a-z0-9_]+)\(.*/\1/')
		# shmreg__* (two underscores) are the inline get's parts in
		# shmreg_inline.h, not API
		case $f in shmreg__*) continue ;; esac
		nfunc=$((nfunc + 1))
		declared[$f]=1
		page=$mandir/$f.3
		if [ ! -f "$page" ]; then
			fail "$f ($h): no docs/man/$f.3"
			continue
		fi
		real=$(real_page "$page")
		if [ ! -f "$real" ]; then
			fail "$f.3: alias target $(basename "$real") does not exist"
			continue
		fi
		if is_alias "$real"; then
			fail "$f.3: alias target $(basename "$real") is an alias itself"
			continue
		fi
		# NAME lists the function (so whatis/apropos find it).
		if ! sed -n '/^\.SH NAME/,/^\.SH /p' "$real" |
		     grep -qE "(^|[ ,])$f(,| |$)"; then
			fail "$f: not named in the NAME section of $(basename "$real")"
		fi
		if [ $have_groff = 1 ]; then
			syn=${synopsis[$real]:-}
			case $syn in
			*"#include <$h>"*) ;;
			*) fail "$f: SYNOPSIS of $(basename "$real") lacks #include <$h>" ;;
			esac
			case $syn in
			*"$proto"*) ;;
			*) fail "$f: SYNOPSIS of $(basename "$real") lacks the prototype"
			   echo "    want: $proto" ;;
			esac
		fi
		# The overview lists every function.
		grep -q "^\.BR $f (3)" "$mandir/shmreg.3" 2>/dev/null ||
			fail "$f: not listed in shmreg.3"
	done <<<"$protos"
done

if [ $nfunc = 0 ]; then
	fail "no prototypes found in $src/include/*.h (parser broken?)"
fi
echo "$nfunc functions declared in include/*.h"

# Every page is a function's page, or the overview; every real page has the
# sections of the house style and a .TH naming itself.
pages=0
for page in "$mandir"/*.3; do
	[ -f "$page" ] || continue
	pages=$((pages + 1))
	base=$(basename "$page" .3)
	if [ "$base" != shmreg ] && [ -z "${declared[$base]+x}" ]; then
		fail "$base.3: documents no function declared in include/*.h"
	fi
	if is_alias "$page"; then
		# man -l in the source tree, from anywhere: what a reader of
		# the tree does (a .so stub failed there)
		[ -L "$page" ] ||
			fail "$base.3: a .so stub, which man -l cannot" \
			     "resolve in the tree: make it a symlink"
		# (man exits 0 after a failed .so: its stderr tells)
		if [ $have_man = 1 ]; then
			err=$(cd / && MANWIDTH=80 man -l "$page" 2>&1 >/dev/null)
			[ -z "$err" ] ||
				fail "$base.3: man -l fails in the source tree: $err"
		fi
		continue
	fi
	grep -q "^\.TH $base 3 " "$page" ||
		fail "$base.3: no '.TH $base 3 ...' line"
	for sec in NAME SYNOPSIS DESCRIPTION; do
		grep -q "^\.SH $sec\$" "$page" || fail "$base.3: no $sec section"
	done
	if [ "$base" != shmreg ]; then
		grep -q '^\.SH RETURN VALUE$' "$page" ||
			fail "$base.3: no RETURN VALUE section"
	fi
	grep -q '^\.SH SEE ALSO$' "$page" || fail "$base.3: no SEE ALSO section"
done
echo "$pages section-3 pages in docs/man"

if [ $have_groff = 0 ]; then
	if [ $have_man = 0 ]; then
		echo "neither groff nor man is installed: formatting not checked"
	fi
	echo "groff is not installed: prototypes not compared"
fi

# Every long option the programs' help texts name is in their man page
# (written there as \-\-name).  Needs the built programs (ctest sets
# SHMREGD and SHMREGCTL); without them, said and skipped.
opts_in_page() { # PAGE: the options on stdin must all be in it
	local page=$1 o e
	while read -r o; do
		e=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
		grep -q -- "$e" "$page" ||
			fail "$(basename "$page"): option $o is not documented"
	done
}
long_opts() { grep -o -- '--[a-z][a-z-]*' | sort -u; }
if [ -n "${SHMREGD:-}" ] && [ -x "$SHMREGD" ]; then
	# (process substitution: fail must count in this shell)
	opts_in_page "$mandir/shmregd.8" < <("$SHMREGD" --help | long_opts)
else
	echo "SHMREGD not set: shmregd's options not checked"
fi
if [ -n "${SHMREGCTL:-}" ] && [ -x "$SHMREGCTL" ]; then
	cmds=$("$SHMREGCTL" help | sed -n '/^Commands:/,/^$/p' |
	       sed -n 's/^  \([a-z-][a-z-]*\).*/\1/p')
	[ -n "$cmds" ] || fail "no commands in shmregctl help"
	opts_in_page "$mandir/shmregctl.1" < <({ "$SHMREGCTL" help
		for c in $cmds; do "$SHMREGCTL" help "$c"; done; } | long_opts)
else
	echo "SHMREGCTL not set: shmregctl's options not checked"
fi

if [ $fails -ne 0 ]; then
	echo "$fails failure(s)"
	exit 1
fi
echo "PASS"
exit 0
