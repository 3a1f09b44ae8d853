package boot

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/manifests"
	"github.com/hw-k8s/hw/pkg/addons"
	"github.com/hw-k8s/hw/pkg/component/apiserver"
	"github.com/hw-k8s/hw/pkg/component/controllermanager"
	"github.com/hw-k8s/hw/pkg/component/etcd"
	"github.com/hw-k8s/hw/pkg/component/scheduler"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/deploy"
	"github.com/hw-k8s/hw/pkg/join"
	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/localpath"
	"github.com/hw-k8s/hw/pkg/metrics"
	"github.com/hw-k8s/hw/pkg/pki"
	"github.com/hw-k8s/hw/pkg/preflight"
	"github.com/hw-k8s/hw/pkg/rbac"
	"github.com/hw-k8s/hw/pkg/sdnotify"
	"github.com/hw-k8s/hw/pkg/servicelb"
	"github.com/hw-k8s/hw/pkg/token"
)

// server is the state one `hw server` run builds up as its phases go.
type server struct {
	cfg   *config.Server
	paths config.Paths
	pki   *pki.ServerPKI
	files apiserver.Files
	token token.Token
	// hostname goes into the serving certificate's SANs.
	hostname string
	// node is the server's own node: containerd, kubelet, kube-proxy, flannel.
	node *node
	// admin is a client with the admin kubeconfig, once the apiserver is up.
	admin       kubernetes.Interface
	adminConfig *rest.Config
}

// Server runs `hw server` until ctx is cancelled or a component fails.
//
// The sequence: check the host (for the node too), make or load the PKI,
// write kubeconfigs and the apiserver's files, the join token; then start
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler, each
// waited for until ready; then the node (see node.start).
func Server(ctx context.Context, cfg *config.Server) error {
	log := klog.FromContext(ctx)
	// First, before containerd starts a shim that could inherit it.
	notifier := sdnotify.FromEnvironment()
	begin := time.Now()
	s := &server{cfg: cfg, paths: cfg.Paths()}
	s.hostname, _ = os.Hostname()
	s.node = newNode(nodeConfig{
		DataDir:         cfg.DataDir,
		Name:            cfg.NodeName,
		IP:              cfg.NodeIP,
		ClusterCIDR:     cfg.ClusterCIDR,
		ClusterDNS:      cfg.ClusterDNS,
		ClusterDomain:   cfg.ClusterDomain,
		Labels:          map[string]string{"node-role.kubernetes.io/control-plane": "true"},
		LabelKubeconfig: s.kubeconfig("admin"),
		ExtraKubelet:    cfg.ExtraArgs.Kubelet,
		ExtraKubeProxy:  cfg.ExtraArgs.KubeProxy,
		FlannelBackend:  cfg.FlannelBackend,
		FlannelIface:    cfg.FlannelIface,
		Snapshotter:     cfg.Snapshotter,
		Debug:           cfg.Debug,
	})

	if err := runPhases(ctx, []Phase{
		{"preflight", s.preflight},
		{"node-preflight", s.node.preflight},
		{"pki", s.ensurePKI},
		{"node-credentials", s.nodeCredentials},
		{"kubeconfigs", s.writeKubeconfigs},
		{"apiserver-files", s.writeAPIServerFiles},
		{"token", s.ensureToken},
		{"addons", s.writeAddOns},
	}); err != nil {
		return err
	}

	m := lifecycle.NewManager()
	defer func() {
		m.Stop(klog.NewContext(context.Background(), log))
	}()
	if err := startInOrder(ctx, m, s.components()...); err != nil {
		return err
	}
	log.Info("Control plane ready", "took", time.Since(begin).Round(time.Millisecond))
	if err := runPhases(ctx, []Phase{
		{"cluster-roles", s.ensureClusterRoles},
		{"join-info", s.publishJoinInfo},
	}); err != nil {
		return err
	}
	if err := startInOrder(ctx, m, join.NewApprover(s.admin), s.manifests()); err != nil {
		return err
	}

	n := s.node
	if err := n.start(ctx, m); err != nil {
		return err
	}
	if n.ownsPodNetwork() {
		log.Info("Node ready", "node", cfg.NodeName, "took", time.Since(begin).Round(time.Millisecond))
	}
	if err := startInOrder(ctx, m, s.addOnControllers()...); err != nil {
		return err
	}
	if cfg.WriteKubeconfig != "" {
		log.Info("Cluster ready: run 'hw kubectl get nodes', or use this kubeconfig with any kubectl", "kubeconfig", cfg.WriteKubeconfig)
	}
	tellServiceManagerReady(log, notifier)
	defer notifier.Stopping()
	return m.Wait(ctx)
}

func (s *server) preflight(ctx context.Context) error {
	if err := preflight.CheckWritableDir(s.cfg.DataDir, "--data-dir"); err != nil {
		return err
	}
	return preflight.CheckPorts(append([]preflight.Port{
		{Host: s.cfg.BindAddress.String(), Number: s.cfg.HTTPSPort, Component: "kube-apiserver", Flag: "--https-listen-port"},
		{Host: "127.0.0.1", Number: config.EtcdClientPort, Component: "etcd clients"},
		{Host: s.cfg.NodeIP.String(), Number: config.EtcdPeerPort, Component: "etcd peers"},
		{Host: "127.0.0.1", Number: config.ControllerManagerPort, Component: "kube-controller-manager"},
		{Host: "127.0.0.1", Number: config.SchedulerPort, Component: "kube-scheduler"},
	}, append(s.addOnPorts(), nodePorts()...)...))
}

func (s *server) addOnPorts() []preflight.Port {
	if s.cfg.Disabled("metrics-server") {
		return nil
	}
	return []preflight.Port{{Host: s.cfg.NodeIP.String(), Number: config.MetricsPort, Component: "metrics API (--disable metrics-server to do without)"}}
}

func (s *server) ensurePKI(ctx context.Context) error {
	p, err := pki.EnsureServer(s.paths.TLS, pki.ServerNames{
		NodeName:       s.cfg.NodeName,
		Hostname:       s.hostname,
		NodeIP:         s.cfg.NodeIP,
		AdvertiseIP:    s.cfg.AdvertiseAddress,
		FirstServiceIP: s.cfg.FirstServiceIP(),
		ClusterDomain:  s.cfg.ClusterDomain,
		ExtraSANs:      s.cfg.TLSSANs,
	}, time.Now())
	if err != nil {
		return err
	}
	s.pki = p
	log := klog.FromContext(ctx)
	if issued := p.Issued(); len(issued) > 0 {
		log.Info("Issued certificates", "count", len(issued), "dir", s.paths.TLS)
		log.V(1).Info("Issued certificates", "files", issued)
	} else {
		log.Info("Using existing certificates", "dir", s.paths.TLS)
	}
	return nil
}

func (s *server) writeKubeconfigs(ctx context.Context) error {
	url := s.cfg.APIServerURL()
	for _, k := range []struct {
		name string
		user *pki.Leaf
	}{
		{"admin", s.pki.Admin},
		{"controller", s.pki.ControllerManager},
		{"scheduler", s.pki.Scheduler},
	} {
		if err := pki.WriteKubeconfig(s.kubeconfig(k.name), url, s.pki.ServerCA, k.user, 0o600); err != nil {
			return fmt.Errorf("writing %s kubeconfig: %w", k.name, err)
		}
	}
	if s.cfg.WriteKubeconfig == "" {
		return nil
	}
	// The user's copy points at the port on loopback too: it is for this machine.
	if err := pki.WriteKubeconfig(s.cfg.WriteKubeconfig, url, s.pki.ServerCA, s.pki.Admin, s.cfg.WriteKubeconfigMode); err != nil {
		return fmt.Errorf("cannot write the admin kubeconfig to %s (--write-kubeconfig): %w", s.cfg.WriteKubeconfig, err)
	}
	return nil
}

// nodeCredentials issues this server's own node identity from its CAs and
// writes the kubeconfigs of its kubelet, kube-proxy and flannel.
func (s *server) nodeCredentials(ctx context.Context) error {
	node, err := pki.EnsureNode(s.paths.AgentTLS, s.pki.ClientCA, s.pki.ServerCA, s.cfg.NodeName, s.cfg.NodeIP, time.Now())
	if err != nil {
		return err
	}
	url := s.cfg.APIServerURL()
	for _, k := range []struct {
		path string
		user *pki.Leaf
	}{
		{s.paths.KubeletConfig, node.KubeletClient},
		{s.paths.KubeProxyConfig, s.pki.KubeProxy},
		{s.paths.FlannelConfig, s.pki.Flannel},
	} {
		if err := pki.WriteKubeconfig(k.path, url, s.pki.ServerCA, k.user, 0o600); err != nil {
			return err
		}
	}
	s.node.cfg.ClientCA = s.pki.ClientCA.CertFile
	s.node.cfg.ServingCert, s.node.cfg.ServingKey = node.KubeletServing.CertFile, node.KubeletServing.KeyFile
	return nil
}

// ensureClusterRoles puts in place the roles hw's components and joining
// agents need beyond Kubernetes' defaults.
func (s *server) ensureClusterRoles(ctx context.Context) error {
	cfg, err := kubeclient.Config(s.kubeconfig("admin"))
	if err != nil {
		return err
	}
	s.adminConfig = cfg
	if s.admin, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	return rbac.Ensure(ctx, s.admin)
}

// publishJoinInfo registers the server's token and publishes the CA and the
// settings joining agents read.
func (s *server) publishJoinInfo(ctx context.Context) error {
	if err := token.EnsureServerBootstrap(ctx, s.admin, s.token); err != nil {
		return err
	}
	clientCA, err := os.ReadFile(s.pki.ClientCA.CertFile)
	if err != nil {
		return err
	}
	advertise := s.cfg.AdvertiseAddress
	if advertise == nil {
		advertise = s.cfg.NodeIP
	}
	url := fmt.Sprintf("https://%s", net.JoinHostPort(advertise.String(), fmt.Sprint(s.cfg.HTTPSPort)))
	return join.Publish(ctx, s.admin, url, s.pki.ServerCA.CertPEM(), join.Settings{
		ClusterCIDR:    s.cfg.ClusterCIDR.String(),
		ServiceCIDR:    s.cfg.ServiceCIDR.String(),
		ClusterDNS:     s.cfg.ClusterDNS.String(),
		ClusterDomain:  s.cfg.ClusterDomain,
		FlannelBackend: s.cfg.FlannelBackend,
		ClientCA:       string(clientCA),
	})
}

// writeAddOns renders the packaged add-ons into the manifests folder and
// removes the disabled ones, before the auto-deploy controller reads it.
func (s *server) writeAddOns(ctx context.Context) error {
	changes, err := addons.Write(s.paths.Manifests, manifests.Settings{
		ClusterDNS:     s.cfg.ClusterDNS.String(),
		ClusterDomain:  s.cfg.ClusterDomain,
		ServerIP:       s.cfg.NodeIP.String(),
		MetricsPort:    config.MetricsPort,
		ServerCABase64: base64.StdEncoding.EncodeToString(s.pki.ServerCA.CertPEM()),
	}, s.cfg.Disabled)
	log := klog.FromContext(ctx)
	for _, c := range changes {
		if c.Action != "unchanged" {
			log.Info("Packaged add-on", "addon", c.AddOn, "file", c.File, "action", c.Action)
		}
	}
	return err
}

// addOnControllers are the add-ons that run in the server's process, once
// its node is up: what their manifests declare is served from here.
func (s *server) addOnControllers() []lifecycle.Component {
	var out []lifecycle.Component
	if !s.cfg.Disabled("local-storage") {
		out = append(out, localpath.NewProvisioner(s.admin))
	}
	if !s.cfg.Disabled("servicelb") {
		out = append(out, servicelb.NewController(s.admin))
	}
	if !s.cfg.Disabled("metrics-server") {
		out = append(out, metrics.New(metrics.Config{
			Addr:              net.JoinHostPort(s.cfg.NodeIP.String(), fmt.Sprint(config.MetricsPort)),
			ServingCert:       s.pki.MetricsServing.CertFile,
			ServingKey:        s.pki.MetricsServing.KeyFile,
			RequestHeaderCA:   s.pki.RequestHeaderCA.CertFile,
			KubeletClientCert: s.pki.APIServerKubeletClient.CertFile,
			KubeletClientKey:  s.pki.APIServerKubeletClient.KeyFile,
			KubeletCA:         s.pki.ServerCA.CertFile,
			Client:            s.admin,
		}))
	}
	return out
}

// manifests is the auto-deploy controller for <data-dir>/server/manifests.
func (s *server) manifests() lifecycle.Component {
	return deploy.New(deploy.Config{Dir: s.paths.Manifests, RESTConfig: s.adminConfig})
}

func (s *server) kubeconfig(name string) string {
	return filepath.Join(s.paths.Cred, name+".kubeconfig")
}

func (s *server) writeAPIServerFiles(ctx context.Context) error {
	files, err := apiserver.EnsureFiles(s.paths.Settings, s.paths.Cred)
	s.files = files
	return err
}

func (s *server) ensureToken(ctx context.Context) error {
	t, err := token.EnsureServerToken(s.paths.Token, s.pki.ServerCA.CertPEM(), s.cfg.Token)
	s.token = t
	return err
}

// components lists the control plane in start order.
func (s *server) components() []lifecycle.Component {
	cfg, p := s.cfg, s.pki
	etcdURL := fmt.Sprintf("https://127.0.0.1:%d", config.EtcdClientPort)
	advertise := cfg.AdvertiseAddress
	if advertise == nil {
		advertise = cfg.NodeIP
	}
	return []lifecycle.Component{
		etcd.New(etcd.Config{
			Name:       cfg.NodeName,
			DataDir:    s.paths.Etcd,
			ClientURL:  etcdURL,
			PeerURL:    fmt.Sprintf("https://%s", net.JoinHostPort(cfg.NodeIP.String(), fmt.Sprint(config.EtcdPeerPort))),
			ServerCA:   p.EtcdServerCA.CertFile,
			ServerCert: p.EtcdServer.CertFile,
			ServerKey:  p.EtcdServer.KeyFile,
			PeerCA:     p.EtcdPeerCA.CertFile,
			PeerCert:   p.EtcdPeer.CertFile,
			PeerKey:    p.EtcdPeer.KeyFile,
			ExtraArgs:  cfg.ExtraArgs.Etcd,
			Debug:      cfg.Debug,
		}),
		apiserver.New(apiserver.Config{
			AdvertiseIP:          advertise,
			BindAddress:          cfg.BindAddress,
			Port:                 cfg.HTTPSPort,
			ServiceCIDR:          cfg.ServiceCIDR.String(),
			ClusterDomain:        cfg.ClusterDomain,
			EtcdURL:              etcdURL,
			EtcdCA:               p.EtcdServerCA.CertFile,
			EtcdCert:             p.EtcdClient.CertFile,
			EtcdKey:              p.EtcdClient.KeyFile,
			ClientCA:             p.ClientCA.CertFile,
			ServingCert:          p.APIServerServing.CertFile,
			ServingKey:           p.APIServerServing.KeyFile,
			KubeletClientCert:    p.APIServerKubeletClient.CertFile,
			KubeletClientKey:     p.APIServerKubeletClient.KeyFile,
			KubeletCA:            p.ServerCA.CertFile,
			ServiceAccountKey:    p.ServiceAccountKey,
			ServiceAccountPub:    p.ServiceAccountPub,
			RequestHeaderCA:      p.RequestHeaderCA.CertFile,
			ProxyClientCert:      p.FrontProxyClient.CertFile,
			ProxyClientKey:       p.FrontProxyClient.KeyFile,
			EncryptionConfig:     s.files.EncryptionConfig,
			AuthenticationConfig: s.files.AuthenticationConfig,
			AuditPolicy:          s.files.AuditPolicy,
			AuditLog:             filepath.Join(s.paths.Logs, "audit.log"),
			CertDir:              filepath.Join(s.paths.TLS, "temporary-certs"),
			ProbeCA:              p.ServerCA.CertFile,
			ProbeCert:            p.Admin.CertFile,
			ProbeKey:             p.Admin.KeyFile,
			ExtraArgs:            cfg.ExtraArgs.APIServer,
		}),
		controllermanager.New(controllermanager.Config{
			Kubeconfig:        s.kubeconfig("controller"),
			ClusterCIDR:       cfg.ClusterCIDR.String(),
			ServiceCIDR:       cfg.ServiceCIDR.String(),
			NodeCIDRMaskSize:  cfg.NodeCIDRMaskSize(),
			ClientCA:          p.ClientCA.CertFile,
			ClientCAKey:       p.ClientCA.KeyFile,
			ServerCA:          p.ServerCA.CertFile,
			ServerCAKey:       p.ServerCA.KeyFile,
			ServiceAccountKey: p.ServiceAccountKey,
			Port:              config.ControllerManagerPort,
			ExtraArgs:         cfg.ExtraArgs.ControllerManager,
		}),
		scheduler.New(scheduler.Config{
			Kubeconfig: s.kubeconfig("scheduler"),
			Port:       config.SchedulerPort,
			ExtraArgs:  cfg.ExtraArgs.Scheduler,
		}),
	}
}
