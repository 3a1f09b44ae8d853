#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages `make run` and `make test` need, when
# missing; does nothing when all are there. Used by the Makefile and .ci/run.
#
#   scripts/host-packages.sh run    # build hw and run a node
#   scripts/host-packages.sh test   # also what the tests use
set -euo pipefail

# Building runc with seccomp: cgo, pkg-config, libseccomp.
build=(gcc libc6-dev pkg-config libseccomp-dev)
# What hw's node runs: see "Errors" in README for what hw checks at start.
node=(iproute2 iptables ipset nftables conntrack mount util-linux)
# The tests check install.sh and what it writes with shellcheck and
# systemd-analyze (from the systemd package; systemd need not be running).
tests=(shellcheck systemd)

case "${1:-}" in
run) packages=("${build[@]}" "${node[@]}") ;;
test) packages=("${build[@]}" "${node[@]}" "${tests[@]}") ;;
*)
	echo "usage: $0 run|test" >&2
	exit 2
	;;
esac

command -v dpkg-query >/dev/null || exit 0 # not Debian: the README lists what to install
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages: ${missing[*]}; as root: apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
