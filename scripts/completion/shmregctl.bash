# SPDX-License-Identifier: MIT
# shmregctl.bash - bash completion for shmregctl: commands, options, option
# values, registry names (from $SHMREG_DIR or /dev/shm) and keys (read
# from the registry, which costs a map and a walk, no daemon).
# Installed as share/bash-completion/completions/shmregctl.

_shmregctl_registries()
{
	local dir=${SHMREG_DIR:-/dev/shm} f n
	for f in "$dir"/shmreg.*; do
		[ -f "$f" ] || continue
		n=${f##*/shmreg.}
		case $n in *.lock | *.wait) continue ;; esac
		printf '%s\n' "$n"
	done
}

_shmregctl()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local cmds="get put del list find children attrs stats await watch
		health ping daemon-stats snapshot rm-registry batch reload registries
		help"
	local global="--registry --json --output --socket --embedded
		--no-embedded --help --version"
	local cmd="" reg=() i
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-r | --registry)
			# -r after del is not --registry (shmregctl(1))
			[ -z "$cmd" ] || [ "$cmd" != del ] || continue
			reg=(--registry "${words[i + 1]}")
			i=$((i + 1)) ;;
		--socket | --owner | --ttl | --expect-rev | --timeout | \
		--since | --file | --prefix | --limit | -w | --output | \
		--attr | --parent | --watch | --count)
			i=$((i + 1)) ;;
		-*) ;;
		*) [ -n "$cmd" ] || cmd=${words[i]} ;;
		esac
	done

	case $prev in
	-r | --registry)
		COMPREPLY=($(compgen -W "$(_shmregctl_registries)" -- "$cur"))
		return ;;
	-w | --output)
		COMPREPLY=($(compgen -W "table simple json" -- "$cur"))
		return ;;
	--socket | --file)
		COMPREPLY=($(compgen -f -- "$cur"))
		return ;;
	--expect-rev)
		COMPREPLY=($(compgen -W "absent" -- "$cur"))
		return ;;
	--owner | --ttl | --timeout | --since | --limit | --prefix | --attr | \
	--watch | --count)
		return ;;
	esac

	local opts=""
	case $cmd in
	get) opts="--raw --print-value-only" ;;
	put) opts="--file --owner --ttl --expect-rev --ephemeral --attr
		--parent" ;;
	del) opts="--prefix --recursive" ;;
	find | children) opts="--keys-only --limit --output" ;;
	list) opts="--prefix --keys-only --limit --output" ;;
	await) opts="--timeout --raw" ;;
	watch) opts="--since" ;;
	stats) opts="--prometheus --watch --count" ;;
	registries) opts="--output" ;;
	"")
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$global" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
		fi
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
		return
	fi
	case $cmd in
	help)
		COMPREPLY=($(compgen -W "$cmds" -- "$cur")) ;;
	rm-registry)
		COMPREPLY=($(compgen -W "$(_shmregctl_registries)" -- "$cur")) ;;
	batch)
		COMPREPLY=($(compgen -f -- "$cur")) ;;
	get | put | del | await | list | watch)
		local IFS=$'\n'
		COMPREPLY=($(compgen -W "$("${words[0]}" "${reg[@]}" list \
			--keys-only --prefix "$cur" 2>/dev/null)" -- "$cur")) ;;
	esac
}

complete -F _shmregctl shmregctl
