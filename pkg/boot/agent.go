package boot

import (
	"context"
	"fmt"
	"net"
	"time"

	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/join"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/preflight"
	"github.com/hw-k8s/hw/pkg/sdnotify"
	"github.com/hw-k8s/hw/pkg/token"
)

// Agent runs `hw agent` until ctx is cancelled or a component fails.
//
// The sequence: check the host; join (or reuse the identity saved by an
// earlier join): find the cluster CA and check it against the token, get the
// node's certificates and the cluster's settings; then run the node exactly
// as a server runs its own (see node.start).
func Agent(ctx context.Context, cfg *config.Agent) error {
	log := klog.FromContext(ctx)
	// First, before containerd starts a shim that could inherit it.
	notifier := sdnotify.FromEnvironment()
	begin := time.Now()
	paths := cfg.Paths()
	tok, err := token.Parse(cfg.Token)
	if err != nil {
		return fmt.Errorf("--token: %v", err)
	}
	nodeCfg := nodeConfig{
		DataDir:        cfg.DataDir,
		Name:           cfg.NodeName,
		IP:             cfg.NodeIP,
		ExtraKubelet:   cfg.ExtraArgs.Kubelet,
		ExtraKubeProxy: cfg.ExtraArgs.KubeProxy,
		FlannelIface:   cfg.FlannelIface,
		Snapshotter:    cfg.Snapshotter,
		Debug:          cfg.Debug,
	}
	var joined *join.Result
	if err := runPhases(ctx, []Phase{
		{"preflight", func(ctx context.Context) error {
			if err := preflight.CheckWritableDir(cfg.DataDir, "--data-dir"); err != nil {
				return err
			}
			return preflight.CheckPorts(nodePorts())
		}},
		// The pod network backend is the server's choice, checked once known.
		{"node-preflight", newNode(nodeCfg).preflight},
		{"join", func(ctx context.Context) error {
			joined, err = join.Join(ctx, join.Request{
				Server: cfg.Server, Token: tok, NodeName: cfg.NodeName, NodeIP: cfg.NodeIP,
				TLSDir: paths.AgentTLS, KubeletConfig: paths.KubeletConfig, KubeProxyConfig: paths.KubeProxyConfig,
				FlannelConfig: paths.FlannelConfig, StateFile: paths.JoinState, PasswordFile: paths.NodePassword,
			})
			return err
		}},
	}); err != nil {
		return err
	}

	settings := joined.Settings
	_, clusterCIDR, err := net.ParseCIDR(settings.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("the server's cluster CIDR %q: %v", settings.ClusterCIDR, err)
	}
	nodeCfg.ClusterCIDR = clusterCIDR
	nodeCfg.ClusterDNS = net.ParseIP(settings.ClusterDNS)
	nodeCfg.ClusterDomain = settings.ClusterDomain
	nodeCfg.FlannelBackend = settings.FlannelBackend
	nodeCfg.ClientCA = joined.ClientCAFile
	nodeCfg.ServingCert, nodeCfg.ServingKey = joined.ServingCert, joined.ServingKey
	n := newNode(nodeCfg)

	m := lifecycle.NewManager()
	defer func() {
		m.Stop(klog.NewContext(context.Background(), log))
	}()
	if err := n.start(ctx, m); err != nil {
		return err
	}
	if n.ownsPodNetwork() {
		log.Info("Node ready", "node", cfg.NodeName, "server", cfg.Server, "took", time.Since(begin).Round(time.Millisecond))
	}
	tellServiceManagerReady(log, notifier)
	defer notifier.Stopping()
	return m.Wait(ctx)
}

// nodePorts are the ports a node's components listen on.
func nodePorts() []preflight.Port {
	return []preflight.Port{
		{Host: "0.0.0.0", Number: 10250, Component: "kubelet"},
		{Host: "127.0.0.1", Number: 10248, Component: "kubelet health"},
		{Host: "127.0.0.1", Number: 10256, Component: "kube-proxy health"},
	}
}
