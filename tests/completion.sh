#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# completion.sh - shmregctl's bash and zsh completion: they parse, register
# themselves, offer every command of 'shmregctl help', registries and keys;
# and the install puts them (and the docs, the example systemd unit, the
# man page aliases) where bash-completion, zsh and man look.
set -euo pipefail

fail() { echo "completion: FAIL: $*" >&2; exit 1; }

[ -n "${SHMREGCTL:-}" ] || { echo "completion: SHMREGCTL not set" >&2; exit 77; }
src=$SHMREG_SOURCE_DIR
bashc=$src/scripts/completion/shmregctl.bash
zshc=$src/scripts/completion/_shmregctl

bash -n "$bashc" || fail "bash -n $bashc"
reg=$(bash -c ". '$bashc' && complete -p shmregctl")
[ "$reg" = "complete -F _shmregctl shmregctl" ] || fail "complete -p: $reg"

# What completing the words "$@" (the last one being completed) offers,
# with shmregctl as the built binary.
complete_words() {
	bash -c '. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		_shmregctl; printf "%s\n" "${COMPREPLY[@]}"' _ "$bashc" "$@" |
		sort | tr '\n' ' '
}

# every command that 'help' lists is offered
cmds=$("$SHMREGCTL" help | sed -n '/^Commands:/,/^$/p' |
       sed -n 's/^  \([a-z-][a-z-]*\).*/\1/p' | sort | tr '\n' ' ')
[ -n "$cmds" ] || fail "no commands in shmregctl help"
got=$(complete_words "$SHMREGCTL" "")
[ "$got" = "$cmds" ] || fail "commands: got '$got', help lists '$cmds'"
[ "$(complete_words "$SHMREGCTL" dae)" = "daemon-stats " ] ||
	fail "dae: $(complete_words "$SHMREGCTL" dae)"
[ "$(complete_words "$SHMREGCTL" list -w s)" = "simple " ] || fail "-w s"
[ "$(complete_words "$SHMREGCTL" reg)" = "registries " ] ||
	fail "reg: $(complete_words "$SHMREGCTL" reg)"

# registries in $SHMREG_DIR, and keys read from the one named
"$SHMREGCTL" -r compl --embedded put svc/db/primary x >/dev/null
"$SHMREGCTL" -r compl --embedded put svc/cache y >/dev/null
[ "$(complete_words "$SHMREGCTL" -r co)" = "compl " ] ||
	fail "-r co: $(complete_words "$SHMREGCTL" -r co)"
got=$(complete_words "$SHMREGCTL" -r compl get svc/)
[ "$got" = "svc/cache svc/db/primary " ] || fail "keys: '$got'"
got=$(complete_words "$SHMREGCTL" -r compl put --t)
[ "$got" = "--ttl " ] || fail "put --t: '$got'"

if command -v zsh >/dev/null 2>&1; then
	zsh -n "$zshc" || fail "zsh -n $zshc"
	got=$(zsh -fc "fpath=('${zshc%/*}' \$fpath); autoload -U compinit
		compinit -u -d '$PWD/zcompdump'; print -r -- \${_comps[shmregctl]}")
	[ "$got" = _shmregctl ] || fail "zsh: _comps[shmregctl] = '$got'"
else
	echo "completion: zsh not installed: zsh completion not checked"
fi

# the install: completion, docs, the unit, alias man pages that man -l reads
cmake --install "$SHMREG_BINARY_DIR" --prefix "$PWD/inst" >/dev/null ||
	fail "cmake --install"
for f in share/bash-completion/completions/shmregctl \
	 share/zsh/site-functions/_shmregctl \
	 share/doc/shmreg/README.md share/doc/shmreg/shmregd.md \
	 share/doc/shmreg/cli.md share/doc/shmreg/examples/shmregd.service \
	 share/man/man1/shmregctl.1 share/man/man3/shmreg_close.3; do
	[ -f "$PWD/inst/$f" ] || fail "not installed: $f"
done
if command -v man >/dev/null 2>&1; then
	page=$PWD/inst/share/man/man3/shmreg_close.3
	err=$(cd / && man -l "$page" 2>&1 >/dev/null)
	[ -z "$err" ] || fail "installed shmreg_close.3: $err"
fi
# the example unit is the one docs/shmregd.md shows
sed -n '/^# \/etc\/systemd\/system\/shmregd.service$/,/^```$/p' \
	"$src/docs/shmregd.md" | sed '$d' >"$PWD/unit.md"
cmp -s "$PWD/unit.md" "$src/docs/shmregd.service" ||
	fail "docs/shmregd.service differs from the unit in docs/shmregd.md"
echo "completion: all passed"
