package preflight

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
)

// Status is the verdict of one host check.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	// Fail would stop hw.
	Fail Status = "fail"
)

// Finding is one line of `hw check-config`: a check, its verdict, and what
// was found or what to do.
type Finding struct {
	Check  string
	Status Status
	Detail string
}

func (f Finding) String() string { return fmt.Sprintf("%-4s  %s: %s", f.Status, f.Check, f.Detail) }

// Failed reports whether any finding would stop hw.
func Failed(findings []Finding) bool {
	for _, f := range findings {
		if f.Status == Fail {
			return true
		}
	}
	return false
}

// Host is the machine the checks read: its root filesystem (/proc, /sys,
// /boot), as an fs.FS so tests can give another.
type Host struct {
	Root fs.FS
}

// kernelFeature is a kernel feature hw's node uses: its config symbol, and
// how a running kernel shows it when it is there.
type kernelFeature struct {
	name     string
	symbol   string // CONFIG_… without the prefix
	required bool
	why      string
	// present looks for runtime evidence (loaded or built in).
	present func(h Host) bool
}

func fileContainsWord(h Host, path, word string) bool {
	data, err := fs.ReadFile(h.Root, path)
	if err != nil {
		return false
	}
	for _, w := range strings.Fields(string(data)) {
		if w == word {
			return true
		}
	}
	return false
}

func exists(h Host, path string) bool {
	_, err := fs.Stat(h.Root, path)
	return err == nil
}

func module(name string) func(Host) bool {
	return func(h Host) bool { return exists(h, "sys/module/"+name) }
}

func xtTarget(name string) func(Host) bool {
	return func(h Host) bool { return fileContainsWord(h, "proc/net/ip_tables_targets", name) }
}

func xtMatch(name string) func(Host) bool {
	return func(h Host) bool { return fileContainsWord(h, "proc/net/ip_tables_matches", name) }
}

var kernelFeatures = []kernelFeature{
	{"overlay", "OVERLAY_FS", false, "containerd's overlayfs snapshotter (else the slower native one)",
		func(h Host) bool { return fileContainsWord(h, "proc/filesystems", "overlay") }},
	{"bridge", "BRIDGE", true, "the pod network's bridge cni0", module("bridge")},
	{"br_netfilter", "BRIDGE_NETFILTER", true, "Services for traffic between pods on one node",
		func(h Host) bool { return exists(h, "proc/sys/net/bridge/bridge-nf-call-iptables") }},
	{"veth", "VETH", true, "pods' network interfaces", module("veth")},
	{"vxlan", "VXLAN", false, "--flannel-backend vxlan, the default (others: host-gw, wireguard-native)", module("vxlan")},
	{"nf_conntrack", "NF_CONNTRACK", true, "kube-proxy's NAT", module("nf_conntrack")},
	{"iptables", "IP_NF_IPTABLES", false, "kube-proxy in iptables mode (else nftables)",
		func(h Host) bool {
			return exists(h, "proc/net/ip_tables_names") || exists(h, "proc/net/ip_tables_targets")
		}},
	{"nf_tables", "NF_TABLES", false, "kube-proxy in nftables mode, iptables-nft", module("nf_tables")},
	{"ipset", "IP_SET", false, "NetworkPolicy", module("ip_set")},
	{"xt_conntrack", "NETFILTER_XT_MATCH_CONNTRACK", true, "kube-proxy (iptables)", xtMatch("conntrack")},
	{"xt_comment", "NETFILTER_XT_MATCH_COMMENT", true, "kube-proxy (iptables)", xtMatch("comment")},
	{"xt_addrtype", "NETFILTER_XT_MATCH_ADDRTYPE", true, "kube-proxy NodePorts (iptables)", xtMatch("addrtype")},
	{"xt_statistic", "NETFILTER_XT_MATCH_STATISTIC", true, "kube-proxy's load balancing (iptables)", xtMatch("statistic")},
	{"xt_mark", "NETFILTER_XT_MARK", true, "kube-proxy, flannel (iptables)", xtTarget("MARK")},
	{"xt_MASQUERADE", "NETFILTER_XT_TARGET_MASQUERADE", true, "flannel, kube-proxy (iptables)", xtTarget("MASQUERADE")},
	{"xt_nat", "NETFILTER_XT_NAT", true, "kube-proxy's DNAT (iptables)", xtTarget("DNAT")},
}

// kernelConfig reads the running kernel's build configuration, from
// /proc/config.gz or /boot/config-<release>; nil when neither is there.
func kernelConfig(h Host) map[string]string {
	var data []byte
	if gz, err := fs.ReadFile(h.Root, "proc/config.gz"); err == nil {
		if r, err := gzip.NewReader(bytes.NewReader(gz)); err == nil {
			data, _ = io.ReadAll(r)
		}
	}
	if data == nil {
		release, err := fs.ReadFile(h.Root, "proc/sys/kernel/osrelease")
		if err != nil {
			return nil
		}
		if data, err = fs.ReadFile(h.Root, "boot/config-"+strings.TrimSpace(string(release))); err != nil {
			return nil
		}
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			out[strings.TrimPrefix(k, "CONFIG_")] = v
		}
	}
	return out
}

// Kernel checks every kernel feature the node uses: in the running kernel
// (loaded, built in), or in its configuration (=y, or =m: loaded on first
// use).
func Kernel(h Host) []Finding {
	config := kernelConfig(h)
	var out []Finding
	for _, f := range kernelFeatures {
		check := "kernel: " + f.name
		switch {
		case f.present(h):
			out = append(out, Finding{check, OK, "in the running kernel (" + f.why + ")"})
		case config[f.symbol] == "y":
			out = append(out, Finding{check, OK, "built in (" + f.why + ")"})
		case config[f.symbol] == "m":
			detail := "a module, loaded on first use (" + f.why + ")"
			if f.name == "br_netfilter" {
				detail = "a module that nothing loads on its own: run 'modprobe br_netfilter' and add it to /etc/modules (" + f.why + ")"
				out = append(out, Finding{check, Warn, detail})
				continue
			}
			out = append(out, Finding{check, OK, detail})
		case config == nil:
			out = append(out, Finding{check, Warn, "not seen in the running kernel, and its configuration is not readable (/proc/config.gz, /boot/config-*): cannot tell (" + f.why + ")"})
		case f.required:
			out = append(out, Finding{check, Fail, "missing: CONFIG_" + f.symbol + " is not set in this kernel; hw needs it for " + f.why})
		default:
			out = append(out, Finding{check, Warn, "missing: CONFIG_" + f.symbol + " is not set; without it, no " + f.why})
		}
	}
	return out
}

// Cgroups checks the cgroup version and the controllers kubelet needs.
func Cgroups(h Host) []Finding {
	required := []string{"cpu", "memory", "pids"}
	var enabled map[string]bool
	version := "v2"
	if data, err := fs.ReadFile(h.Root, "sys/fs/cgroup/cgroup.controllers"); err == nil {
		enabled = map[string]bool{}
		for _, c := range strings.Fields(string(data)) {
			enabled[c] = true
		}
	} else if data, err := fs.ReadFile(h.Root, "proc/cgroups"); err == nil {
		version = "v1"
		enabled = map[string]bool{}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 4 && !strings.HasPrefix(f[0], "#") && f[3] == "1" {
				enabled[f[0]] = true
			}
		}
		required = append(required, "cpuacct", "devices", "freezer")
	} else {
		return []Finding{{"cgroups", Fail, "neither /sys/fs/cgroup/cgroup.controllers nor /proc/cgroups is readable: is /sys/fs/cgroup mounted?"}}
	}
	out := []Finding{{"cgroups: version", OK, version + map[string]string{"v1": " (kubelet runs with failCgroupV1: false; cgroup v1 is deprecated upstream)", "v2": ""}[version]}}
	if version == "v1" {
		out[0].Status = Warn
	}
	for _, c := range required {
		if enabled[c] {
			out = append(out, Finding{"cgroups: " + c, OK, "enabled"})
		} else {
			out = append(out, Finding{"cgroups: " + c, Fail, "controller not enabled: kubelet needs it (kernel command line, e.g. cgroup_enable=" + c + ")"})
		}
	}
	return out
}

// Swap warns when swap is on: kubelet runs with it allowed.
func Swap(h Host) Finding {
	data, err := fs.ReadFile(h.Root, "proc/swaps")
	if err != nil {
		return Finding{"swap", Warn, "cannot read /proc/swaps"}
	}
	if n := len(strings.Split(strings.TrimSpace(string(data)), "\n")); n > 1 {
		return Finding{"swap", Warn, fmt.Sprintf("%d swap area(s) on: hw lets kubelet run with swap, but pods' memory limits then count less; 'swapoff -a' to turn it off", n-1)}
	}
	return Finding{"swap", OK, "off"}
}

// capSysResource is CAP_SYS_RESOURCE's bit.
const capSysResource = 24

// Capabilities checks for CAP_SYS_RESOURCE, which containerd's shims need
// to set pods' OOM scores.
func Capabilities(h Host) Finding {
	data, err := fs.ReadFile(h.Root, "proc/self/status")
	if err != nil {
		return Finding{"capabilities", Warn, "cannot read /proc/self/status"}
	}
	for _, line := range strings.Split(string(data), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				break
			}
			if caps&(1<<capSysResource) != 0 {
				return Finding{"capabilities: CAP_SYS_RESOURCE", OK, "present"}
			}
			return Finding{"capabilities: CAP_SYS_RESOURCE", Warn, "missing (a container or a restricted VM): hw tells containerd not to raise pods' OOM scores, and pods run"}
		}
	}
	return Finding{"capabilities", Warn, "no CapEff in /proc/self/status"}
}

// Tools checks each host program, one finding each.
func Tools(user string, tools []Tool, lookPath func(string) (string, error)) []Finding {
	var out []Finding
	for _, t := range tools {
		if err := CheckTools(user, []Tool{t}, lookPath); err != nil {
			out = append(out, Finding{"tool: " + t.Name, Fail, err.Error()})
		} else {
			out = append(out, Finding{"tool: " + t.Name, OK, "found"})
		}
	}
	return out
}

// Ports checks each port, one finding each.
func Ports(ports []Port) []Finding {
	var out []Finding
	for _, p := range ports {
		check := fmt.Sprintf("port %d (%s)", p.Number, p.Component)
		if err := CheckPorts([]Port{p}); err != nil {
			out = append(out, Finding{check, Fail, err.Error() + " (if hw runs here, that is hw itself)"})
		} else {
			out = append(out, Finding{check, OK, "free"})
		}
	}
	return out
}

// DataDir checks that the data dir can be written.
func DataDir(dir, flag string) Finding {
	if err := CheckWritableDir(dir, flag); err != nil {
		return Finding{"data dir " + dir, Fail, err.Error()}
	}
	return Finding{"data dir " + dir, OK, "writable"}
}
