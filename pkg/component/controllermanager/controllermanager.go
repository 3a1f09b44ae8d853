// Package controllermanager runs kube-controller-manager inside the hw process.
package controllermanager

import (
	"bytes"
	"context"
	"fmt"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/k8srun"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// Config is what kube-controller-manager needs.
type Config struct {
	Kubeconfig       string
	ClusterCIDR      string
	ServiceCIDR      string
	NodeCIDRMaskSize int
	// ClientCA signs client certificates (kubelet client CSRs); ServerCA signs
	// serving certificates (kubelet serving CSRs) and is the root CA that pods
	// get to verify the apiserver.
	ClientCA, ClientCAKey string
	ServerCA, ServerCAKey string
	ServiceAccountKey     string
	Port                  int
	ExtraArgs             []string
}

// Args is hw's own kube-controller-manager command line; ExtraArgs go on top.
func (c Config) Args() config.Args {
	own := config.Args{
		"controllers":                                     "*,tokencleaner,bootstrapsigner",
		"use-service-account-credentials":                 "true",
		"service-account-private-key-file":                c.ServiceAccountKey,
		"root-ca-file":                                    c.ServerCA,
		"allocate-node-cidrs":                             "true",
		"cluster-cidr":                                    c.ClusterCIDR,
		"service-cluster-ip-range":                        c.ServiceCIDR,
		"node-cidr-mask-size":                             fmt.Sprint(c.NodeCIDRMaskSize),
		"configure-cloud-routes":                          "false",
		"cluster-signing-kube-apiserver-client-cert-file": c.ClientCA,
		"cluster-signing-kube-apiserver-client-key-file":  c.ClientCAKey,
		"cluster-signing-kubelet-client-cert-file":        c.ClientCA,
		"cluster-signing-kubelet-client-key-file":         c.ClientCAKey,
		"cluster-signing-kubelet-serving-cert-file":       c.ServerCA,
		"cluster-signing-kubelet-serving-key-file":        c.ServerCAKey,
		"cluster-signing-legacy-unknown-cert-file":        c.ServerCA,
		"cluster-signing-legacy-unknown-key-file":         c.ServerCAKey,
		// At start, every controller gets its own service account and token
		// through one shared client: at the default 20 requests per second
		// that alone took 5 s of every cold start.
		"kube-api-qps":   "50",
		"kube-api-burst": "100",
	}
	return k8srun.LocalComponentArgs(c.Kubeconfig, c.Port).With(own)
}

// New returns the kube-controller-manager component; nothing runs until Start.
func New(cfg Config) lifecycle.Component {
	return k8srun.NewComponent("kube-controller-manager", cfg.Args(), cfg.ExtraArgs, k8srun.NewControllerManager, func(ctx context.Context) error {
		// Ready once every controller is built, not just serving: building
		// the volume controllers initialises the CSI volume plugin, whose node
		// state is a package-level variable that kubelet, in this same
		// process, must set last, or it cannot initialise its CSINode and
		// exits (the known problem of embedding both, see k3s#287).
		// The controllers' health checks are registered all at once, after
		// every controller is built.
		url := fmt.Sprintf("https://127.0.0.1:%d/healthz?verbose", cfg.Port)
		return lifecycle.WaitHTTP(ctx, lifecycle.LocalHealthClient(), url, func(body []byte) bool {
			return bytes.Contains(body, []byte("[+]serviceaccount-token-controller ok"))
		})
	})
}
