#!/bin/sh
# hw installer.
#
#   curl -sfL https://github.com/hw-k8s/hw/releases/latest/download/install.sh | sh -
#   curl -sfL … | HW_URL=https://SERVER:6443 HW_TOKEN=… sh -        # an agent
#
# It installs the hw binary (downloaded and checked against its sha256, or the
# one already in the bin dir), a service for systemd or OpenRC, an environment
# file with the HW_* variables it was given, kubectl/crictl/ctr links,
# hw-killall.sh and an uninstall script. The README ("Installing") describes
# every variable. Running it again changes only what differs, and restarts
# the service only when the binary, service or environment changed.
set -eu

info() { echo "[INFO] $*"; }
fatal() {
	echo "[ERROR] $*" >&2
	exit 1
}

BIN_DIR=${INSTALL_HW_BIN_DIR:-/usr/local/bin}
SYSTEMD_DIR=${INSTALL_HW_SYSTEMD_DIR:-/etc/systemd/system}
OPENRC_DIR=${INSTALL_HW_OPENRC_DIR:-/etc/init.d}
CONFIG_DIR=${INSTALL_HW_CONFIG_DIR:-/etc/hw}
DOWNLOAD_URL=${INSTALL_HW_DOWNLOAD_URL:-https://github.com/hw-k8s/hw/releases}
DOWNLOAD_URL=${DOWNLOAD_URL%/}
VERSION=${INSTALL_HW_VERSION:-}
EXEC=${INSTALL_HW_EXEC:-}
# Arguments after `sh -s -` are added to INSTALL_HW_EXEC.
if [ $# -gt 0 ]; then
	EXEC="$EXEC $*"
fi
CHANGED=

# --- what to install -------------------------------------------------------

# The command is the first word of INSTALL_HW_EXEC when that is server or
# agent; otherwise agent when HW_URL is set, else server.
choose_command() {
	case "$EXEC" in
	*"
"*) fatal "INSTALL_HW_EXEC has a newline; give the flags on one line" ;;
	esac
	# shellcheck disable=SC2086 # split into words on purpose
	set -- $EXEC
	case "${1:-}" in
	server | agent)
		CMD=$1
		shift
		EXEC=$*
		;;
	*)
		EXEC=$*
		if [ -n "${HW_URL:-}" ]; then CMD=agent; else CMD=server; fi
		;;
	esac
	if [ "$CMD" = agent ]; then
		[ -n "${HW_URL:-}" ] || fatal "an agent needs HW_URL=https://SERVER:6443"
		case "$HW_URL" in
		https://?*) ;;
		http://*) fatal "HW_URL=$HW_URL is plain http: an agent sends its token only over TLS; use https://SERVER:6443" ;;
		*) fatal "HW_URL=$HW_URL is not an https:// URL; use https://SERVER:6443" ;;
		esac
		if [ -z "${HW_TOKEN:-}" ] && [ -z "${HW_TOKEN_FILE:-}" ]; then
			fatal "an agent needs HW_TOKEN (the server's /var/lib/hw/server/token, or one from 'hw token create') or HW_TOKEN_FILE"
		fi
		if [ -n "${HW_TOKEN_FILE:-}" ] && [ ! -r "$HW_TOKEN_FILE" ]; then
			fatal "HW_TOKEN_FILE=$HW_TOKEN_FILE cannot be read"
		fi
	fi
	NAME=${INSTALL_HW_NAME:-hw}
	if [ -z "${INSTALL_HW_NAME:-}" ] && [ "$CMD" = agent ]; then NAME=hw-agent; fi
	case "$NAME" in
	"" | *[!A-Za-z0-9_.-]*) fatal "INSTALL_HW_NAME=$NAME: use letters, digits, '.', '_' and '-' only" ;;
	esac
	if [ "$CMD" = agent ]; then UNINSTALL=hw-agent-uninstall.sh; else UNINSTALL=hw-uninstall.sh; fi
	ENV_FILE=$CONFIG_DIR/$NAME.env
}

choose_init() {
	INIT=${INSTALL_HW_INIT:-}
	if [ -z "$INIT" ]; then
		if [ -d /run/systemd/system ]; then
			INIT=systemd
		elif [ -x /sbin/openrc-run ]; then
			INIT=openrc
		else
			INIT=none
		fi
	fi
	case "$INIT" in
	systemd) SERVICE_FILE=$SYSTEMD_DIR/$NAME.service ;;
	openrc) SERVICE_FILE=$OPENRC_DIR/$NAME ;;
	none) SERVICE_FILE= ;;
	*) fatal "INSTALL_HW_INIT=$INIT: want systemd, openrc or none" ;;
	esac
}

# --- files -----------------------------------------------------------------

# put_file PATH MODE < content: writes PATH only when its content or mode
# differ, so a second run with the same settings touches nothing. It must not
# run in a pipeline's subshell, which would lose CHANGED.
put_file() {
	dir=$(dirname "$1")
	mkdir -p "$dir"
	tmp=$(mktemp "$dir/.hw-install.XXXXXX")
	cat >"$tmp"
	chmod "$2" "$tmp"
	if [ -f "$1" ] && cmp -s "$tmp" "$1" && [ "$(stat -c %a "$1")" = "$(stat -c %a "$tmp")" ]; then
		rm -f "$tmp"
		return 0
	fi
	mv -f "$tmp" "$1"
	info "wrote $1"
	CHANGED=1
}

arch() {
	case "$(uname -m)" in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	armv7*) echo arm ;;
	*) fatal "no hw release for this machine's architecture, $(uname -m)" ;;
	esac
}

# fetch URL FILE
fetch() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL -o "$2" "$1" || fatal "downloading $1 failed"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1" || fatal "downloading $1 failed"
	else
		fatal "need curl or wget to download hw"
	fi
}

# The download layout is GitHub's: <url>/download/<version>/hw-<arch>, or
# <url>/latest/download/hw-<arch> for the newest release; beside each binary
# is hw-<arch>.sha256. `make dist` builds the same layout.
install_binary() {
	if [ "${INSTALL_HW_SKIP_DOWNLOAD:-}" = true ]; then
		[ -x "$BIN_DIR/hw" ] || fatal "INSTALL_HW_SKIP_DOWNLOAD=true but there is no executable $BIN_DIR/hw; put hw there first"
		info "using $BIN_DIR/hw as it is (INSTALL_HW_SKIP_DOWNLOAD)"
		return 0
	fi
	a=$(arch)
	if [ -n "$VERSION" ]; then base=$DOWNLOAD_URL/download/$VERSION; else base=$DOWNLOAD_URL/latest/download; fi
	info "downloading $base/hw-$a"
	fetch "$base/hw-$a.sha256" "$WORK/hw.sha256"
	fetch "$base/hw-$a" "$WORK/hw"
	want=$(cut -d' ' -f1 <"$WORK/hw.sha256")
	got=$(sha256sum "$WORK/hw" | cut -d' ' -f1)
	if [ "$want" != "$got" ]; then
		fatal "hw-$a from $base has sha256 $got, but hw-$a.sha256 says $want: not installing it"
	fi
	if [ -f "$BIN_DIR/hw" ] && cmp -s "$WORK/hw" "$BIN_DIR/hw"; then
		info "$BIN_DIR/hw is already this release"
		return 0
	fi
	mkdir -p "$BIN_DIR"
	# Written beside the target, then renamed over it: a running hw keeps
	# its old file, and nobody sees half a binary.
	cp "$WORK/hw" "$BIN_DIR/.hw.new"
	chmod 0755 "$BIN_DIR/.hw.new"
	mv -f "$BIN_DIR/.hw.new" "$BIN_DIR/hw"
	info "installed $BIN_DIR/hw (sha256 $got)"
	CHANGED=1
}

# Links that make hw answer as kubectl, crictl and ctr, made only where no
# such command exists; a link to hw from an earlier run is kept.
install_links() {
	for tool in kubectl crictl ctr; do
		link=$BIN_DIR/$tool
		if [ -L "$link" ] && [ "$(readlink "$link")" = hw ]; then
			continue
		fi
		if found=$(command -v "$tool" 2>/dev/null); then
			info "not linking $tool: $found exists"
			continue
		fi
		ln -s hw "$link"
		info "linked $link -> hw"
	done
}

# The HW_* variables this installer was given, for the service. Values are
# single-quoted, which both systemd and sh read.
write_env() {
	: >"$WORK/env"
	for name in $(env | sed -n 's/^\(HW_[A-Z0-9_]*\)=.*/\1/p' | sort); do
		value=$(printenv "$name")
		case "$value" in
		*\'* | *"
"*) fatal "$name has a quote or a newline; put that setting in $CONFIG_DIR/config.yaml instead" ;;
		esac
		printf "%s='%s'\n" "$name" "$value" >>"$WORK/env"
	done
	put_file "$ENV_FILE" 0600 <"$WORK/env"
}

write_systemd_unit() {
	put_file "$SERVICE_FILE" 0644 <<EOF
[Unit]
Description=hw Kubernetes $CMD
Documentation=https://github.com/hw-k8s/hw
Wants=network-online.target
After=network-online.target

[Service]
# hw sends READY=1 once its node is Ready; an agent may wait long for its
# server, so there is no start timeout.
Type=notify
NotifyAccess=main
TimeoutStartSec=0
EnvironmentFile=-$ENV_FILE
ExecStart=$BIN_DIR/hw $CMD${EXEC:+ $EXEC}
# Stopping hw must not stop the pods: their shims and containers outlive it.
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
EOF
}

write_openrc_script() {
	put_file "$SERVICE_FILE" 0755 <<EOF
#!/sbin/openrc-run
# shellcheck shell=sh disable=SC2034 # openrc-run reads these variables
description="hw Kubernetes $CMD"
supervisor=supervise-daemon
command="$BIN_DIR/hw"
command_args="$CMD${EXEC:+ $EXEC}"
output_log="/var/log/$NAME.log"
error_log="/var/log/$NAME.log"
respawn_delay=5
respawn_max=0

if [ -f "$ENV_FILE" ]; then
	set -a
	# shellcheck disable=SC1091 # written by install.sh
	. "$ENV_FILE"
	set +a
fi

depend() {
	need net
	want cgroups
	after firewall
}
EOF
}

# render NAME < template: the template with its @VARIABLES@ filled in, in
# $WORK/NAME.
render() {
	sed -e "s|@BIN_DIR@|$(sed_escape "$BIN_DIR")|g" \
		-e "s|@SYSTEMD_DIR@|$(sed_escape "$SYSTEMD_DIR")|g" \
		-e "s|@OPENRC_DIR@|$(sed_escape "$OPENRC_DIR")|g" \
		-e "s|@CONFIG_DIR@|$(sed_escape "$CONFIG_DIR")|g" \
		-e "s|@ENV_FILE@|$(sed_escape "$ENV_FILE")|g" \
		-e "s|@NAME@|$(sed_escape "$NAME")|g" \
		-e "s|@UNINSTALL@|$(sed_escape "$UNINSTALL")|g" >"$WORK/$1"
}

sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

write_killall() {
	render hw-killall.sh <<'KILLALL'
#!/bin/sh
# Stops hw and everything it started on this machine: the service, hw, the
# pods' shims and containers, their mounts, network interfaces and firewall
# rules. Data in /var/lib/hw is kept. Written by hw's install.sh.
set -u
if [ "$(id -u)" -ne 0 ]; then
	echo "[ERROR] run hw-killall.sh as root" >&2
	exit 1
fi
# The data dir: HW_DATA_DIR from the environment, else from the service's
# environment file, else hw's default.
# shellcheck disable=SC1091 # the environment file install.sh wrote
env_data_dir() { if [ -r "@ENV_FILE@" ]; then (. "@ENV_FILE@" && echo "${HW_DATA_DIR:-}"); fi; }
DATA_DIR=${HW_DATA_DIR:-$(env_data_dir)}
DATA_DIR=${DATA_DIR:-/var/lib/hw}

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	for unit in "@SYSTEMD_DIR@"/hw.service "@SYSTEMD_DIR@"/hw-*.service; do
		[ -f "$unit" ] && systemctl stop "$(basename "$unit")"
	done
fi
if command -v rc-service >/dev/null 2>&1; then
	for script in "@OPENRC_DIR@"/hw "@OPENRC_DIR@"/hw-*; do
		[ -x "$script" ] && rc-service "$(basename "$script")" stop
	done
fi

# Only processes in this shell's mount namespace are this machine's hw:
# an hw in a container here has its own and is left alone.
self_mnt=$(readlink /proc/$$/ns/mnt)

# matching PATTERN: PIDs whose command line, arguments joined by spaces,
# matches the shell pattern.
matching() {
	for dir in /proc/[0-9]*; do
		[ "$(readlink "$dir/ns/mnt" 2>/dev/null)" = "$self_mnt" ] || continue
		args=$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null) || continue
		# shellcheck disable=SC2254 # $1 is a pattern
		case "$args" in $1) echo "${dir#/proc/}" ;; esac
	done
}

# descendants PID...: every process below the given ones.
descendants() {
	roots="$*"
	for stat in /proc/[0-9]*/stat; do
		line=$(cat "$stat" 2>/dev/null) || continue
		# "pid (comm) state ppid ...", where comm may hold spaces.
		rest=${line##*) }
		echo "${line%% *} $(echo "$rest" | cut -d' ' -f2)"
	done | awk -v roots="$roots" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) mine[r[i]] = 1 }
		{ parent[$1] = $2 }
		END {
			for (grew = 1; grew; ) {
				grew = 0
				for (p in parent) if (!(p in mine) && (parent[p] in mine)) { mine[p] = 1; below[p] = 1; grew = 1 }
			}
			for (p in below) print p
		}'
}

alive() {
	for pid in "$@"; do
		[ -d "/proc/$pid" ] && return 0
	done
	return 1
}

# hw itself first, so it starts nothing again; on SIGTERM it stops its
# components and exits within seconds.
hw_pids=$(matching "*/hw server*"; matching "*/hw agent*"; matching "hw server*"; matching "hw agent*")
if [ -n "$hw_pids" ]; then
	# shellcheck disable=SC2086 # lists of PIDs, here and below
	echo "[INFO] stopping hw (pid" $hw_pids")"
	# shellcheck disable=SC2086
	kill -TERM $hw_pids 2>/dev/null
	waited=0
	# shellcheck disable=SC2086
	while alive $hw_pids && [ "$waited" -lt 30 ]; do
		sleep 1
		waited=$((waited + 1))
	done
	# shellcheck disable=SC2086
	kill -KILL $hw_pids 2>/dev/null
fi

# Then the shims (containerd-shim-runc-v2, started by hw's containerd, which
# passes its socket) and the containers below them.
shims=$(matching "* -address /run/hw/containerd/containerd.sock*")
if [ -n "$shims" ]; then
	# shellcheck disable=SC2086
	pods=$(descendants $shims)
	echo "[INFO] killing $(echo "$shims" | wc -l) shims and $(echo "$pods" | grep -c .) container processes"
	# shellcheck disable=SC2086
	kill -KILL $pods $shims 2>/dev/null
fi

# Mounts below hw's and kubelet's folders and the pods' network namespaces,
# deepest first. Those folders themselves stay mounted if they are mounts.
awk -v data="$DATA_DIR/" '
	index($5, "/run/hw/") == 1 || index($5, data) == 1 ||
	index($5, "/var/lib/kubelet/") == 1 || index($5, "/run/netns/cni-") == 1 { print $5 }
' /proc/self/mountinfo | sort -r | while read -r mnt; do
	umount "$mnt" 2>/dev/null || umount -l "$mnt"
done
rm -rf /run/netns/cni-*
# libcni's cached results for those pods (the hw network and containerd's
# loopback), now stale.
rm -f /var/lib/cni/results/hw-* /var/lib/cni/results/cni-loopback-*
rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null

# Network interfaces: the pods' veths on cni0, the bridge, flannel's devices.
ip -o link show master cni0 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1 | while read -r veth; do
	ip link delete "$veth"
done
for link in cni0 flannel.1 flannel-v6.1 flannel-wg flannel-wg-v6; do
	if ip link show "$link" >/dev/null 2>&1; then
		ip link delete "$link"
	fi
done

# The cluster DNS address every node answers on (see docs/addons.md).
ip -o -4 addr show dev lo label lo:hw-dns 2>/dev/null | awk '{ print $4 }' | while read -r addr; do
	ip addr delete "$addr" dev lo
done

# Firewall: kube-proxy's, flannel's, the CNI plugins' and the cluster DNS's
# chains and the rules that jump to them; every other rule is restored as it was.
for tool in iptables ip6tables iptables-legacy ip6tables-legacy; do
	command -v "$tool-save" >/dev/null 2>&1 || continue
	rules=$("$tool-save" 2>/dev/null) || continue
	echo "$rules" | grep -Eq 'KUBE-|CNI-|FLANNEL|HW-DNS' || continue
	echo "$rules" | grep -Ev 'KUBE-|CNI-|FLANNEL|HW-DNS' | "$tool-restore"
done
# The network policy controller's address sets, once no rule uses them.
if command -v ipset >/dev/null 2>&1; then
	ipset list -n 2>/dev/null | grep -E '^(inet6:)?(KUBE-|kube-router-)' | while read -r set; do
		ipset destroy "$set"
	done
fi
if command -v nft >/dev/null 2>&1; then
	nft list tables 2>/dev/null | while read -r _ family table; do
		case "$table" in
		kube-proxy | flannel* | hw-dns) nft delete table "$family" "$table" ;;
		esac
	done
fi

# kubelet's pod cgroups (cgroupfs driver, default cgroup root), now empty;
# rmdir removes only empty cgroups, deepest first.
for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/*; do
	[ -d "$hierarchy/kubepods" ] || continue
	find "$hierarchy/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null
done

# Runtime state, as after a reboot: nothing in it runs any more.
rm -rf /run/hw
echo "[INFO] hw stopped"
KILLALL
	put_file "$BIN_DIR/hw-killall.sh" 0755 <"$WORK/hw-killall.sh"
}

write_uninstall() {
	render uninstall <<'UNINSTALL'
#!/bin/sh
# Removes hw from this machine: stops it (hw-killall.sh), then deletes its
# service, environment file, binary, links and all of its data. Written by
# hw's install.sh.
set -u
if [ "$(id -u)" -ne 0 ]; then
	echo "[ERROR] run @UNINSTALL@ as root" >&2
	exit 1
fi
# shellcheck disable=SC1091 # the environment file install.sh wrote
env_data_dir() { if [ -r "@ENV_FILE@" ]; then (. "@ENV_FILE@" && echo "${HW_DATA_DIR:-}"); fi; }
DATA_DIR=${HW_DATA_DIR:-$(env_data_dir)}
DATA_DIR=${DATA_DIR:-/var/lib/hw}
systemd_runs() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

"@BIN_DIR@/hw-killall.sh"

if [ -f "@SYSTEMD_DIR@/@NAME@.service" ]; then
	systemd_runs && systemctl disable "@NAME@.service" 2>/dev/null
	rm -f "@SYSTEMD_DIR@/@NAME@.service"
	systemd_runs && systemctl daemon-reload
fi
if [ -f "@OPENRC_DIR@/@NAME@" ]; then
	command -v rc-update >/dev/null 2>&1 && rc-update delete "@NAME@" default >/dev/null 2>&1
	rm -f "@OPENRC_DIR@/@NAME@"
fi
rm -f "@ENV_FILE@"

for tool in kubectl crictl ctr; do
	if [ -L "@BIN_DIR@/$tool" ] && [ "$(readlink "@BIN_DIR@/$tool")" = hw ]; then
		rm -f "@BIN_DIR@/$tool"
	fi
done

# Contents first, never crossing into another filesystem; a folder that is
# itself a mount point (a separate disk) is left, empty.
for dir in "@CONFIG_DIR@" /etc/hw "$DATA_DIR" /run/hw /var/lib/kubelet /var/log/pods /var/log/containers; do
	[ -d "$dir" ] || continue
	find "$dir" -xdev -mindepth 1 -delete
	rmdir "$dir" 2>/dev/null
done

rm -f "@BIN_DIR@/hw" "@BIN_DIR@/hw-killall.sh" "@BIN_DIR@/@UNINSTALL@"
echo "[INFO] hw is uninstalled"
UNINSTALL
	put_file "$BIN_DIR/$UNINSTALL" 0755 <"$WORK/uninstall"
}

# --- service ---------------------------------------------------------------

start_service() {
	case "$INIT" in
	none)
		info "no service (INSTALL_HW_INIT=none); start hw with:"
		echo "    set -a; . $ENV_FILE; set +a; $BIN_DIR/hw $CMD${EXEC:+ $EXEC}"
		;;
	systemd)
		if [ ! -d /run/systemd/system ]; then
			info "systemd is not running here: start the service later with 'systemctl enable --now $NAME'"
			return 0
		fi
		systemctl daemon-reload
		[ "${INSTALL_HW_SKIP_ENABLE:-}" = true ] || systemctl enable "$NAME" >/dev/null
		if [ "${INSTALL_HW_SKIP_START:-}" = true ]; then
			info "not starting $NAME (INSTALL_HW_SKIP_START)"
		elif [ -n "$CHANGED" ]; then
			info "restarting $NAME; this returns once the node is Ready"
			systemctl restart "$NAME"
		else
			systemctl start "$NAME"
		fi
		;;
	openrc)
		if ! command -v rc-service >/dev/null 2>&1; then
			info "OpenRC is not running here: start the service later with 'rc-update add $NAME default; rc-service $NAME start'"
			return 0
		fi
		[ "${INSTALL_HW_SKIP_ENABLE:-}" = true ] || rc-update add "$NAME" default >/dev/null
		if [ "${INSTALL_HW_SKIP_START:-}" = true ]; then
			info "not starting $NAME (INSTALL_HW_SKIP_START)"
		elif [ -n "$CHANGED" ]; then
			info "restarting $NAME"
			rc-service "$NAME" restart
		else
			rc-service "$NAME" start
		fi
		;;
	esac
}

main() {
	WORK=$(mktemp -d)
	trap 'rm -rf "$WORK"' EXIT
	choose_command
	choose_init
	info "installing hw $CMD as '$NAME' (init: $INIT)"
	install_binary
	install_links
	write_env
	write_killall
	write_uninstall
	case "$INIT" in
	systemd) write_systemd_unit ;;
	openrc) write_openrc_script ;;
	esac
	if [ -z "$CHANGED" ]; then
		info "nothing changed"
	fi
	start_service
	info "remove hw with $BIN_DIR/$UNINSTALL"
}

main
