# SPDX-License-Identifier: MIT
# deps.sh - install the Debian packages shmreg needs, quietly when they are
# all there.  Sourced by scripts/run and scripts/test; needs bash.
#
#   shmreg_deps build   compiler, CMake, pkg-config, liburing, xxHash,
#                       libcurl + cJSON (shmregd's etcd mirror),
#                       python3-dev (the Python module)
#   shmreg_deps test    build + g++ (install test), python3 (JSON checks),
#                       zsh (the completion test),
#                       clang and its fuzzer runtime (fuzz preset),
#                       liblmdb (the benchmarks build with the tests),
#                       the real servers the tests start: nginx with the
#                       Lua module, gunicorn, etcd; python3-lmdb,
#                       python3-redis and redis-server (peers built into
#                       the Python tests), python3-prometheus-client
#                       (its parser checks /metrics)
#   shmreg_deps bench   test + redis-tools, wrk (peer benchmarks)
#
# Returns 0 when everything is installed (installing it first when root),
# 1 after naming what is missing when it cannot install.

SHMREG_PKGS_BUILD="build-essential cmake pkg-config liburing-dev libxxhash-dev
	libcurl4-openssl-dev libcjson-dev python3-dev"
SHMREG_PKGS_TEST="$SHMREG_PKGS_BUILD g++ clang liblmdb-dev python3 zsh
	nginx-light libnginx-mod-http-lua gunicorn etcd-server etcd-client
	python3-lmdb python3-redis redis-server python3-prometheus-client"
SHMREG_PKGS_BENCH="$SHMREG_PKGS_TEST redis-tools wrk"

# Print the packages among "$@" that dpkg does not list as installed.
shmreg_missing_pkgs() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q ' installed$' || echo "$p"
	done
}

_shmreg_apt_updated=0
_shmreg_apt_install() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "shmreg: missing Debian packages: $*" >&2
		echo "shmreg: install them as root:  apt-get install $*" >&2
		return 1
	fi
	echo "shmreg: installing $*" >&2
	if [ "$_shmreg_apt_updated" = 0 ]; then
		apt-get update -qq >&2 || return 1
		_shmreg_apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "$@" </dev/null >&2
}

shmreg_deps() {
	local set=${1:-build} pkgs missing major
	case $set in
	build) pkgs=$SHMREG_PKGS_BUILD ;;
	test)  pkgs=$SHMREG_PKGS_TEST ;;
	bench) pkgs=$SHMREG_PKGS_BENCH ;;
	*) echo "shmreg_deps: unknown set '$set'" >&2; return 2 ;;
	esac
	if ! command -v dpkg-query >/dev/null 2>&1; then
		# Not Debian: trust the machine and let CMake report what
		# is missing.
		echo "shmreg: no dpkg; not checking packages ($pkgs)" >&2
		return 0
	fi
	# shellcheck disable=SC2086
	missing=$(shmreg_missing_pkgs $pkgs)
	if [ -n "$missing" ]; then
		# shellcheck disable=SC2086
		_shmreg_apt_install $missing || return 1
	fi
	# clang's libFuzzer and sanitizer runtimes are only a Recommends of
	# clang: name the package for the installed clang's major version.
	case " $pkgs " in
	*" clang "*)
		major=$(clang --version 2>/dev/null |
			sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -1)
		if [ -n "$major" ] && [ "$major" -ge 14 ] &&
		   [ -n "$(shmreg_missing_pkgs "libclang-rt-$major-dev")" ]; then
			_shmreg_apt_install "libclang-rt-$major-dev" || return 1
		fi
		;;
	esac
	return 0
}
