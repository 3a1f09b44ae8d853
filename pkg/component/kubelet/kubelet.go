// Package kubelet runs the kubelet inside the hw process.
package kubelet

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/k8srun"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// HealthzPort is kubelet's health endpoint, on loopback only.
const HealthzPort = 10248

// Config is what the kubelet needs.
type Config struct {
	NodeName      string
	NodeIP        net.IP
	Kubeconfig    string
	ClientCA      string // verifies clients such as the apiserver
	ServingCert   string
	ServingKey    string
	RuntimeSocket string
	StaticPodDir  string
	ClusterDNS    net.IP
	ClusterDomain string
	ResolvConf    string
	// CgroupDriver is systemd when systemd is init, else cgroupfs.
	CgroupDriver string
	PluginDir    string
	// Labels (KEY=VALUE, ones a kubelet may set) and Taints
	// (KEY=VALUE:EFFECT) go on the Node when it registers.
	Labels, Taints []string
	ExtraArgs      []string
}

// Args is hw's own kubelet command line; ExtraArgs go on top.
func (c Config) Args() config.Args {
	args := config.Args{
		"kubeconfig":                   c.Kubeconfig,
		"hostname-override":            c.NodeName,
		"node-ip":                      c.NodeIP.String(),
		"container-runtime-endpoint":   "unix://" + c.RuntimeSocket,
		"cgroup-driver":                c.CgroupDriver,
		"fail-cgroupv1":                "false", // most edge boards still boot cgroup v1
		"cluster-dns":                  c.ClusterDNS.String(),
		"cluster-domain":               c.ClusterDomain,
		"resolv-conf":                  c.ResolvConf,
		"anonymous-auth":               "false",
		"authentication-token-webhook": "true",
		"authorization-mode":           "Webhook",
		"client-ca-file":               c.ClientCA,
		"tls-cert-file":                c.ServingCert,
		"tls-private-key-file":         c.ServingKey,
		"read-only-port":               "0",
		"healthz-bind-address":         "127.0.0.1",
		"healthz-port":                 fmt.Sprint(HealthzPort),
		"pod-manifest-path":            c.StaticPodDir,
		"fail-swap-on":                 "false",
		"serialize-image-pulls":        "false",
		"eviction-hard":                "imagefs.available<5%,nodefs.available<5%",
		"eviction-minimum-reclaim":     "imagefs.available=10%,nodefs.available=10%",
		"volume-plugin-dir":            c.PluginDir,
		"register-node":                "true",
	}
	if len(c.Labels) > 0 {
		args["node-labels"] = strings.Join(c.Labels, ",")
	}
	if len(c.Taints) > 0 {
		args["register-with-taints"] = strings.Join(c.Taints, ",")
	}
	return args
}

// New returns the kubelet component; nothing runs until Start.
func New(cfg Config) lifecycle.Component {
	return k8srun.NewComponent("kubelet", cfg.Args(), cfg.ExtraArgs, k8srun.NewKubelet, func(ctx context.Context) error {
		return lifecycle.WaitHTTPOK(ctx, lifecycle.LocalHealthClient(), fmt.Sprintf("http://127.0.0.1:%d/healthz", HealthzPort))
	})
}

// CgroupDriver picks the driver that matches the init system.
func CgroupDriver() string {
	if st, err := os.Stat("/run/systemd/system"); err == nil && st.IsDir() {
		return "systemd"
	}
	return "cgroupfs"
}

// ResolvConf picks the host resolver file for pods with dnsPolicy Default: on
// systemd-resolved hosts /etc/resolv.conf names a loopback stub that pods
// cannot reach, so the real upstream list is used instead.
func ResolvConf() string {
	const resolved = "/run/systemd/resolve/resolv.conf"
	if data, err := os.ReadFile("/etc/resolv.conf"); err == nil && strings.Contains(string(data), "nameserver 127.0.0.53") {
		if _, err := os.Stat(resolved); err == nil {
			return resolved
		}
	}
	return "/etc/resolv.conf"
}
