// Package hostinfo finds the facts about this machine that hw uses as
// defaults: its name and the address other nodes reach it on.
package hostinfo

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// NodeName is the lower-cased host name.
func NodeName() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("cannot read the host name (%v); pass --node-name", err)
	}
	return strings.ToLower(h), nil
}

// NodeIP is the first IPv4 address of the interface that holds the default
// route, or else of the first interface that is up and not loopback. It reads
// the routing table; it sends nothing.
func NodeIP() (net.IP, error) {
	if name, err := defaultRouteInterface("/proc/net/route"); err == nil {
		if ip := firstIPv4(name); ip != nil {
			return ip, nil
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		if ip := firstIPv4(iface.Name); ip != nil {
			return ip, nil
		}
	}
	return nil, errors.New("cannot find this node's IP address (no default route and no interface with an IPv4 address); pass --node-ip")
}

func firstIPv4(iface string) net.IP {
	i, err := net.InterfaceByName(iface)
	if err != nil {
		return nil
	}
	addrs, err := i.Addrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.To4()
		}
	}
	return nil
}

// defaultRouteInterface reads the kernel's IPv4 routing table.
func defaultRouteInterface(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 7 && fields[1] == "00000000" && fields[7] == "00000000" {
			return fields[0], nil
		}
	}
	return "", errors.New("no default route")
}

// capSysResource is CAP_SYS_RESOURCE's bit in the capability sets.
const capSysResource = 24

// HasSysResource reports whether this process may raise resource limits and
// lower oom_score_adj. Some sandboxes drop it even for root; runc then cannot
// give a container an oom_score_adj below hw's own.
func HasSysResource() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			var caps uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &caps); err != nil {
				return true
			}
			return caps&(1<<capSysResource) != 0
		}
	}
	return true
}

// OverlaySupported reports whether the kernel offers overlayfs.
func OverlaySupported() bool {
	data, err := os.ReadFile("/proc/filesystems")
	return err == nil && overlayListed(string(data))
}

// overlayListed reads /proc/filesystems' format: "nodev\toverlay" lines.
func overlayListed(filesystems string) bool {
	for _, line := range strings.Split(filesystems, "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 && fields[len(fields)-1] == "overlay" {
			return true
		}
	}
	return false
}

// Snapshotter is the containerd snapshotter to use: the user's choice, else
// overlayfs where the kernel has it, else native (plain copies: slower and
// bigger, but works on any filesystem).
func Snapshotter(choice string, overlay bool) string {
	if choice != "" {
		return choice
	}
	if overlay {
		return "overlayfs"
	}
	return "native"
}
