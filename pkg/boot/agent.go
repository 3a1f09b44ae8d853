package boot

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/assets"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/join"
	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/loadbalancer"
	"github.com/hw-k8s/hw/pkg/pki"
	"github.com/hw-k8s/hw/pkg/preflight"
	"github.com/hw-k8s/hw/pkg/sdnotify"
	"github.com/hw-k8s/hw/pkg/token"
)

// Agent runs `hw agent` until ctx is cancelled or a component fails.
//
// An agent's node is configured with the cluster's settings, which only the
// join tells, so its boot has two plans: "join" (check the host and the
// node's passthrough arguments; join, or reuse the identity an earlier join
// saved) and "agent" (the node, exactly as a server runs its own).
func Agent(ctx context.Context, cfg *config.Agent) error {
	log := klog.FromContext(ctx)
	// First, before containerd starts a shim that could inherit it.
	notifier := sdnotify.FromEnvironment()
	began := time.Now()
	tok, err := token.Parse(cfg.Token)
	if err != nil {
		return fmt.Errorf("--token: %v", err)
	}
	set, err := assets.Embedded()
	if err != nil {
		return err
	}
	m := lifecycle.NewManager()
	var n *node
	lbClients := kubeclient.NewShared(cfg.Paths().KubeProxyConfig)
	defer func() {
		m.Stop(klog.NewContext(context.Background(), log))
		if n != nil {
			n.clients.Shutdown() // once every component reading them has stopped
		}
		lbClients.Shutdown()
	}()
	var joined *join.Result
	if err := joinPlan(cfg, tok, set, &joined).Run(ctx, m); err != nil {
		return err
	}
	if n, err = agentNode(cfg, joined, set); err != nil {
		return err
	}
	if err := agentPlan(n, cfg, lbClients, began).Run(ctx, m); err != nil {
		return err
	}
	tellServiceManagerReady(log, notifier)
	defer notifier.Stopping()
	return m.Wait(ctx)
}

// joinPlan checks the host, then joins; the result is written to *joined.
// The components that take the user's passthrough arguments (kubelet,
// kube-proxy) are checked first with the cluster's default settings, so a
// bad --kubelet-arg or --kube-proxy-arg is refused before the agent asks the
// server for anything; the agent plan checks them again with the real ones.
func joinPlan(cfg *config.Agent, tok token.Token, set *assets.Set, joined **join.Result) lifecycle.Plan {
	paths := cfg.Paths()
	defaults := config.NewServer()
	trial := newNode(agentNodeConfig(cfg, join.Settings{
		ClusterCIDR: defaults.ClusterCIDR.String(), ClusterDNS: defaults.ClusterDNS.String(),
		ClusterDomain: defaults.ClusterDomain, FlannelBackend: defaults.FlannelBackend, ServiceCIDR: defaults.ServiceCIDR.String(),
	}, paths), set)
	return lifecycle.Plan{Name: "join", Steps: []lifecycle.Step{
		lifecycle.Phase("preflight", func(ctx context.Context) error {
			if err := preflight.CheckWritableDir(cfg.DataDir, "--data-dir"); err != nil {
				return err
			}
			return preflight.CheckPorts(append(nodePorts(),
				preflight.Port{Host: "127.0.0.1", Number: loadbalancer.DefaultPort, Component: "the agent's apiserver load balancer"}))
		}),
		lifecycle.Phase("node-arguments", func(ctx context.Context) error {
			for _, c := range []lifecycle.Component{trial.kubelet, trial.kubeProxy} {
				if err := c.Init(ctx); err != nil {
					return err
				}
			}
			return nil
		}),
		// The pod network backend is the server's choice, checked once known.
		lifecycle.Phase("node-preflight", trial.preflight),
		lifecycle.Phase("join", func(ctx context.Context) error {
			res, err := join.Join(ctx, join.Request{
				Server: cfg.Server, Token: tok, NodeName: cfg.NodeName, NodeIP: cfg.NodeIP,
				TLSDir: paths.AgentTLS, KubeletConfig: paths.KubeletConfig, KubeProxyConfig: paths.KubeProxyConfig,
				FlannelConfig: paths.FlannelConfig, StateFile: paths.JoinState, PasswordFile: paths.NodePassword,
			})
			*joined = res
			return err
		}),
	}}
}

// agentNode is the agent's node, configured with the cluster's settings.
func agentNode(cfg *config.Agent, joined *join.Result, set *assets.Set) (*node, error) {
	if _, _, err := net.ParseCIDR(joined.Settings.ClusterCIDR); err != nil {
		return nil, fmt.Errorf("the server's cluster CIDR %q: %v", joined.Settings.ClusterCIDR, err)
	}
	return newNode(agentNodeConfig(cfg, joined.Settings, cfg.Paths()), set), nil
}

// agentNodeConfig is the node's configuration from the agent's flags and the
// cluster's settings; the node's certificates are where the join puts them.
func agentNodeConfig(cfg *config.Agent, settings join.Settings, paths config.Paths) nodeConfig {
	_, clusterCIDR, _ := net.ParseCIDR(settings.ClusterCIDR)
	serving := pki.NodeLayout(paths.AgentTLS).KubeletServing
	return nodeConfig{
		DataDir:        cfg.DataDir,
		Name:           cfg.NodeName,
		IP:             cfg.NodeIP,
		ClusterCIDR:    clusterCIDR,
		ServiceCIDR:    settings.ServiceCIDR,
		ClusterDNS:     net.ParseIP(settings.ClusterDNS),
		ClusterDomain:  settings.ClusterDomain,
		ClientCA:       join.ClientCAFile(paths.AgentTLS),
		ServingCert:    serving.CertFile,
		ServingKey:     serving.KeyFile,
		NodeLabels:     cfg.NodeLabels,
		NodeTaints:     cfg.NodeTaints,
		ExtraKubelet:   cfg.ExtraArgs.Kubelet,
		ExtraKubeProxy: cfg.ExtraArgs.KubeProxy,
		FlannelBackend: settings.FlannelBackend,
		FlannelIface:   cfg.FlannelIface,
		NetworkPolicy:  !settings.DisableNetworkPolicy,
		Snapshotter:    cfg.Snapshotter,
		Debug:          cfg.Debug,
	}
}

// agentPlan is the node's boot on an agent: its components reach the
// apiservers through a local load balancer, which fails over between them.
func agentPlan(n *node, cfg *config.Agent, lbClients *kubeclient.Shared, began time.Time) lifecycle.Plan {
	paths := cfg.Paths()
	u, _ := url.Parse(cfg.Server) // checked by config.Agent.Validate
	port := u.Port()
	if port == "" {
		port = "443"
	}
	lb := loadbalancer.New(loadbalancer.Config{
		Listen:    net.JoinHostPort("127.0.0.1", fmt.Sprint(loadbalancer.DefaultPort)),
		Server:    net.JoinHostPort(u.Hostname(), port),
		StateFile: paths.Servers,
		Clients:   lbClients,
	})
	steps := []lifecycle.Step{
		lifecycle.Phase("kubeconfigs", func(ctx context.Context) error {
			for _, k := range []string{paths.KubeletConfig, paths.KubeProxyConfig, paths.FlannelConfig} {
				if err := pki.SetKubeconfigServer(k, lb.URL()); err != nil {
					return fmt.Errorf("pointing %s at the load balancer: %w", k, err)
				}
			}
			return nil
		}),
		lifecycle.Start(lb),
	}
	steps = append(steps, n.steps()...)
	if n.ownsPodNetwork() {
		steps = append(steps, lifecycle.Phase("node-ready-log", func(ctx context.Context) error {
			klog.FromContext(ctx).Info("Node ready", "node", cfg.NodeName, "server", cfg.Server, "took", time.Since(began).Round(time.Millisecond))
			return nil
		}))
	}
	return lifecycle.Plan{Name: "agent", Steps: steps}
}

// nodePorts are the ports a node's components listen on.
func nodePorts() []preflight.Port {
	return []preflight.Port{
		{Host: "0.0.0.0", Number: 10250, Component: "kubelet"},
		{Host: "127.0.0.1", Number: 10248, Component: "kubelet health"},
		{Host: "127.0.0.1", Number: 10256, Component: "kube-proxy health"},
	}
}
