// Package kubeproxy runs kube-proxy inside the hw process.
package kubeproxy

import (
	"context"
	"fmt"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/k8srun"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/preflight"
)

// HealthzPort is kube-proxy's health endpoint, on loopback only.
const HealthzPort = 10256

// Config is what kube-proxy needs.
type Config struct {
	NodeName    string
	Kubeconfig  string
	ClusterCIDR string
	ExtraArgs   []string
}

// Args is hw's own kube-proxy command line; ExtraArgs go on top.
func (c Config) Args() config.Args {
	return config.Args{
		"kubeconfig":           c.Kubeconfig,
		"hostname-override":    c.NodeName,
		"cluster-cidr":         c.ClusterCIDR,
		"proxy-mode":           "iptables",
		"healthz-bind-address": fmt.Sprintf("127.0.0.1:%d", HealthzPort),
		"metrics-bind-address": "127.0.0.1:10249",
		// 0 leaves the host's conntrack table size alone: hw does not tune
		// kernel settings behind the user's back, and a network namespace
		// may not be allowed to.
		"conntrack-max-per-core": "0",
	}
}

// Mode is the proxy mode these arguments select.
func (c Config) Mode() string { return c.Args().Merge(c.ExtraArgs)["proxy-mode"] }

// New returns the kube-proxy component; nothing runs until Start.
func New(cfg Config) lifecycle.Component {
	return k8srun.NewComponent("kube-proxy", cfg.Args(), cfg.ExtraArgs, k8srun.NewKubeProxy, func(ctx context.Context) error {
		return lifecycle.WaitHTTPOK(ctx, lifecycle.LocalHealthClient(), fmt.Sprintf("http://127.0.0.1:%d/livez", HealthzPort))
	})
}

// RequiredTools lists the host programs a proxy mode needs.
func RequiredTools(mode string) []preflight.Tool {
	if mode == "nftables" {
		return []preflight.Tool{{Name: "nft", Package: "nftables"}}
	}
	var tools []preflight.Tool
	for _, name := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables"} {
		tools = append(tools, preflight.Tool{Name: name, Package: "iptables"})
	}
	return tools
}
