package preflight

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func byCheck(findings []Finding) map[string]Finding {
	out := map[string]Finding{}
	for _, f := range findings {
		out[f.Check] = f
	}
	return out
}

// A feature seen in the running kernel is ok; one the configuration builds
// in or as a module is ok; a required one the configuration lacks fails; an
// optional one warns; br_netfilter as a module warns, as nothing loads it.
func TestKernelChecks(t *testing.T) {
	h := Host{Root: fstest.MapFS{
		"proc/filesystems":           {Data: []byte("nodev\tsysfs\nnodev\toverlay\n")},
		"proc/net/ip_tables_targets": {Data: []byte("DNAT\nMASQUERADE\nMARK\n")},
		"proc/net/ip_tables_matches": {Data: []byte("comment\nconntrack\naddrtype\n")},
		"sys/module/bridge/refcnt":   {Data: []byte("1")},
		"sys/module/nf_conntrack/x":  {Data: []byte("")},
		"proc/config.gz":             {Data: gz("CONFIG_VETH=y\nCONFIG_VXLAN=m\nCONFIG_BRIDGE_NETFILTER=m\nCONFIG_NF_TABLES=y\n# CONFIG_IP_SET is not set\n")},
	}}
	got := byCheck(Kernel(h))
	for check, want := range map[string]Status{
		"kernel: overlay":       OK,   // in /proc/filesystems
		"kernel: bridge":        OK,   // /sys/module
		"kernel: veth":          OK,   // =y
		"kernel: vxlan":         OK,   // =m
		"kernel: br_netfilter":  Warn, // =m, loaded by nobody
		"kernel: xt_statistic":  Fail, // required, not in the configuration
		"kernel: ipset":         Warn, // optional, not set
		"kernel: xt_MASQUERADE": OK,
	} {
		if got[check].Status != want {
			t.Errorf("%s: %s (%s), want %s", check, got[check].Status, got[check].Detail, want)
		}
	}
	if !strings.Contains(got["kernel: xt_statistic"].Detail, "CONFIG_NETFILTER_XT_MATCH_STATISTIC") {
		t.Errorf("the failure does not name the config symbol: %s", got["kernel: xt_statistic"].Detail)
	}
	if !Failed(Kernel(h)) {
		t.Error("Failed() = false with a fail line")
	}
}

func TestCgroupSwapAndCapabilityChecks(t *testing.T) {
	v1 := Host{Root: fstest.MapFS{
		"proc/cgroups":     {Data: []byte("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\ncpuacct\t2\t1\t1\nmemory\t3\t1\t0\npids\t4\t1\t1\ndevices\t5\t1\t1\nfreezer\t6\t1\t1\n")},
		"proc/swaps":       {Data: []byte("Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1024 0 -2\n")},
		"proc/self/status": {Data: []byte("Name:\tx\nCapEff:\t000001fffeffffff\n")}, // all but bit 24
	}}
	got := byCheck(Cgroups(v1))
	if got["cgroups: version"].Status != Warn || got["cgroups: memory"].Status != Fail || got["cgroups: cpu"].Status != OK {
		t.Errorf("cgroup v1 findings: %v", got)
	}
	if f := Swap(v1); f.Status != Warn || !strings.Contains(f.Detail, "1 swap area") {
		t.Errorf("swap: %v", f)
	}
	if f := Capabilities(v1); f.Status != Warn || !strings.Contains(f.Check, "CAP_SYS_RESOURCE") {
		t.Errorf("capabilities: %v", f)
	}
	v2 := Host{Root: fstest.MapFS{
		"sys/fs/cgroup/cgroup.controllers": {Data: []byte("cpuset cpu io memory pids\n")},
		"proc/swaps":                       {Data: []byte("Filename\tType\tSize\tUsed\tPriority\n")},
		"proc/self/status":                 {Data: []byte("CapEff:\t000001ffffffffff\n")},
	}}
	if Failed(Cgroups(v2)) || Swap(v2).Status != OK || Capabilities(v2).Status != OK {
		t.Errorf("v2 host: %v %v %v", Cgroups(v2), Swap(v2), Capabilities(v2))
	}
}

func TestToolAndPortFindingsUseTheStartChecks(t *testing.T) {
	look := func(name string) (string, error) {
		if name == "iptables" {
			return "/usr/sbin/iptables", nil
		}
		return "", errors.New("not found")
	}
	got := byCheck(Tools("the node", []Tool{{"iptables", "iptables"}, {"nft", "nftables"}}, look))
	if got["tool: iptables"].Status != OK || got["tool: nft"].Status != Fail || !strings.Contains(got["tool: nft"].Detail, "apt-get install nftables") {
		t.Errorf("tools: %v", got)
	}
}
