#!/bin/sh
# hw installer. This first version installs a locally built binary only:
#   INSTALL_HW_SKIP_DOWNLOAD=true sh install.sh   (with bin/hw built by `make`)
# Service units, downloads and uninstall come with the installer issue.
set -eu

BIN_DIR=${INSTALL_HW_BIN_DIR:-/usr/local/bin}

fatal() {
	echo "[ERROR] $*" >&2
	exit 1
}

if [ "${INSTALL_HW_SKIP_DOWNLOAD:-}" != "true" ]; then
	fatal "downloads are not supported yet; build with 'make' and run with INSTALL_HW_SKIP_DOWNLOAD=true"
fi
src=$(dirname "$0")/bin/hw
[ -x "$src" ] || fatal "no hw binary at $src; run 'make' first"
mkdir -p "$BIN_DIR"
install -m 0755 "$src" "$BIN_DIR/hw"
for tool in kubectl ctr; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		ln -sf hw "$BIN_DIR/$tool"
	fi
done
echo "[INFO] installed $BIN_DIR/hw; start a server with: hw server"
