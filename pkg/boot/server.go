package boot

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/manifests"
	"github.com/hw-k8s/hw/pkg/addons"
	"github.com/hw-k8s/hw/pkg/assets"
	"github.com/hw-k8s/hw/pkg/component/apiserver"
	"github.com/hw-k8s/hw/pkg/component/controllermanager"
	"github.com/hw-k8s/hw/pkg/component/etcd"
	"github.com/hw-k8s/hw/pkg/component/scheduler"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/deploy"
	"github.com/hw-k8s/hw/pkg/etcdcluster"
	"github.com/hw-k8s/hw/pkg/join"
	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/leader"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/localpath"
	"github.com/hw-k8s/hw/pkg/metrics"
	"github.com/hw-k8s/hw/pkg/pki"
	"github.com/hw-k8s/hw/pkg/preflight"
	"github.com/hw-k8s/hw/pkg/rbac"
	"github.com/hw-k8s/hw/pkg/sdnotify"
	"github.com/hw-k8s/hw/pkg/servicelb"
	"github.com/hw-k8s/hw/pkg/snapshot"
	"github.com/hw-k8s/hw/pkg/token"
)

// server is one `hw server` run: its configuration, the files and
// components derived from it, and the two results later steps read.
type server struct {
	cfg   *config.Server
	paths config.Paths
	// layout names every certificate file before the "pki" step writes them.
	layout *pki.ServerPKI
	files  apiserver.Files
	// hostname goes into the serving certificate's SANs.
	hostname string
	began    time.Time
	// quorum watches the embedded etcd's members; /readyz reads it.
	quorum *etcdcluster.QuorumWatch
	// admin is the client of hw's server-side controllers (admin rights).
	admin *kubeclient.Shared
	// node is the server's own node: containerd, kubelet, kube-proxy, flannel.
	node *node

	// Set by a step and read by later ones: the CAs and certificates
	// ("pki") and the server token ("token").
	pki   *pki.ServerPKI
	token token.Token
}

// Server runs `hw server` until ctx is cancelled or a component fails: it
// builds the plan (see plan), checks every component's configuration, runs
// the steps in order, then watches the components.
func Server(ctx context.Context, cfg *config.Server) error {
	log := klog.FromContext(ctx)
	// First, before containerd starts a shim that could inherit it.
	notifier := sdnotify.FromEnvironment()
	set, err := assets.Embedded()
	if err != nil {
		return err
	}
	began := time.Now()
	if cfg.Server != "" {
		// Check every component's configuration before asking the cluster
		// for anything; the cluster's settings then replace the defaults.
		if err := newServer(cfg, set, began).plan().Init(ctx); err != nil {
			return err
		}
		if err := joinCluster(ctx, cfg); err != nil {
			return err
		}
	}
	s := newServer(cfg, set, began)
	// Deferred first, so they run last: the shared informers stop once
	// every component reading them has.
	defer s.admin.Shutdown()
	defer s.node.clients.Shutdown()
	m := lifecycle.NewManager()
	defer func() {
		m.Stop(klog.NewContext(context.Background(), log))
	}()
	if err := s.plan().Run(ctx, m); err != nil {
		return err
	}
	tellServiceManagerReady(log, notifier)
	defer notifier.Stopping()
	return m.Wait(ctx)
}

func newServer(cfg *config.Server, set *assets.Set, began time.Time) *server {
	paths := cfg.Paths()
	s := &server{
		cfg:    cfg,
		paths:  paths,
		layout: pki.ServerLayout(paths.TLS),
		files:  apiserver.FilesIn(paths.Settings, paths.Cred),
		began:  began,
	}
	s.hostname, _ = os.Hostname()
	s.quorum = &etcdcluster.QuorumWatch{Endpoint: config.EtcdClientURL(), TLS: s.etcdClientTLS, Every: 5 * time.Second}
	s.admin = kubeclient.NewShared(s.kubeconfig("admin"))
	node := pki.NodeLayout(paths.AgentTLS)
	s.node = newNode(nodeConfig{
		DataDir:        cfg.DataDir,
		Name:           cfg.NodeName,
		IP:             cfg.NodeIP,
		ClusterCIDR:    cfg.ClusterCIDR,
		ServiceCIDR:    cfg.ServiceCIDR.String(),
		ClusterDNS:     cfg.ClusterDNS,
		ClusterDomain:  cfg.ClusterDomain,
		ClientCA:       s.layout.ClientCA.CertFile,
		ServingCert:    node.KubeletServing.CertFile,
		ServingKey:     node.KubeletServing.KeyFile,
		Labels:         map[string]string{"node-role.kubernetes.io/control-plane": "true"},
		Finalizers:     serverFinalizers(cfg),
		NodeLabels:     cfg.NodeLabels,
		NodeTaints:     cfg.NodeTaints,
		Labeler:        s.admin,
		ExtraKubelet:   cfg.ExtraArgs.Kubelet,
		ExtraKubeProxy: cfg.ExtraArgs.KubeProxy,
		FlannelBackend: cfg.FlannelBackend,
		FlannelIface:   cfg.FlannelIface,
		NetworkPolicy:  !cfg.DisableNetworkPolicy,
		Snapshotter:    cfg.Snapshotter,
		Debug:          cfg.Debug,
	}, set)
	return s
}

// plan is `hw server`'s boot sequence. First the files: certificates,
// kubeconfigs, the apiserver's settings, the join token, the add-ons'
// manifests; then the control plane, each component ready before the next;
// then what needs the API (roles, join information, hw's controllers); then
// the server's own node; last, the add-ons served from this process.
func (s *server) plan() lifecycle.Plan {
	steps := []lifecycle.Step{
		lifecycle.Phase("preflight", s.preflight),
		lifecycle.Phase("node-preflight", s.node.preflight),
		lifecycle.Phase("pki", s.ensurePKI),
		lifecycle.Phase("node-credentials", s.nodeCredentials),
		lifecycle.Phase("kubeconfigs", s.writeKubeconfigs),
		lifecycle.Phase("apiserver-files", func(context.Context) error { return s.files.Ensure() }),
		lifecycle.Phase("token", s.ensureToken),
		lifecycle.Phase("addons", s.writeAddOns),
	}
	for _, c := range s.controlPlane() {
		steps = append(steps, lifecycle.Start(c))
	}
	steps = append(steps,
		lifecycle.Phase("control-plane-ready", s.logReady("Control plane ready")),
		lifecycle.Phase("cluster-roles", s.ensureClusterRoles),
		lifecycle.Phase("join-info", s.publishJoinInfo),
		lifecycle.Start(s.elected(join.NewApprover(s.admin), "hw-csr-approver")),
		lifecycle.Start(deploy.New(deploy.Config{Dir: s.paths.Manifests, Clients: s.admin})),
	)
	if !s.cfg.External() {
		steps = append(steps,
			lifecycle.Start(s.elected(&etcdcluster.Remover{Clients: s.admin, Endpoint: config.EtcdClientURL(), TLS: s.etcdClientTLS}, "hw-etcd-members")),
			lifecycle.Start(s.quorum))
	}
	// Snapshots are of the embedded etcd; an external one is backed up by its own tools.
	if !s.cfg.EtcdSnapshots.Disable && !s.cfg.External() {
		steps = append(steps, lifecycle.Start(snapshot.NewSchedule(snapshot.ScheduleConfig{
			Cron:      s.cfg.EtcdSnapshots.Cron,
			Retention: s.cfg.EtcdSnapshots.Retention,
			Name:      s.cfg.EtcdSnapshots.Name,
			Dir:       s.cfg.SnapshotDir(),
			Node:      s.cfg.NodeName,
			TLSDir:    s.paths.TLS,
			Endpoint:  config.EtcdClientURL(),
			Clients:   s.admin,
			S3:        s.cfg.EtcdSnapshots.S3,
			Compress:  s.cfg.EtcdSnapshots.Compress,
		})))
	}
	steps = append(steps, s.node.steps()...)
	if s.node.ownsPodNetwork() {
		steps = append(steps, lifecycle.Phase("node-ready-log", s.logReady("Node ready", "node", s.cfg.NodeName)))
	}
	for _, c := range s.addOnControllers() {
		steps = append(steps, lifecycle.Start(c))
	}
	steps = append(steps, lifecycle.Phase("cluster-ready", s.logClusterReady))
	return lifecycle.Plan{Name: "server", Steps: steps}
}

// logReady logs msg with the time since the start.
func (s *server) logReady(msg string, kv ...any) func(context.Context) error {
	return func(ctx context.Context) error {
		klog.FromContext(ctx).Info(msg, append(kv, "took", time.Since(s.began).Round(time.Millisecond))...)
		return nil
	}
}

func (s *server) logClusterReady(ctx context.Context) error {
	if s.cfg.WriteKubeconfig != "" {
		klog.FromContext(ctx).Info("Cluster ready: run 'hw kubectl get nodes', or use this kubeconfig with any kubectl", "kubeconfig", s.cfg.WriteKubeconfig)
	}
	return nil
}

func (s *server) preflight(ctx context.Context) error {
	if err := preflight.CheckWritableDir(s.cfg.DataDir, "--data-dir"); err != nil {
		return err
	}
	if s.cfg.External() {
		d := s.cfg.Datastore
		for _, f := range []struct{ flag, path string }{{"--datastore-cafile", d.CAFile}, {"--datastore-certfile", d.CertFile}, {"--datastore-keyfile", d.KeyFile}} {
			if f.path == "" {
				continue
			}
			if _, err := os.ReadFile(f.path); err != nil {
				return fmt.Errorf("%s: %w", f.flag, err)
			}
		}
	}
	return preflight.CheckPorts(s.ports())
}

// ports are the ports the server's components listen on.
func (s *server) ports() []preflight.Port {
	ports := []preflight.Port{
		{Host: s.cfg.BindAddress.String(), Number: s.cfg.HTTPSPort, Component: "kube-apiserver", Flag: "--https-listen-port"},
		{Host: "127.0.0.1", Number: config.ControllerManagerPort, Component: "kube-controller-manager"},
		{Host: "127.0.0.1", Number: config.SchedulerPort, Component: "kube-scheduler"},
	}
	if !s.cfg.External() {
		ports = append(ports,
			preflight.Port{Host: "127.0.0.1", Number: config.EtcdClientPort, Component: "etcd clients"},
			preflight.Port{Host: s.cfg.NodeIP.String(), Number: config.EtcdClientPort, Component: "etcd clients of other servers"},
			preflight.Port{Host: s.cfg.NodeIP.String(), Number: config.EtcdPeerPort, Component: "etcd peers"})
	}
	return append(ports, append(s.addOnPorts(), nodePorts()...)...)
}

func (s *server) addOnPorts() []preflight.Port {
	if s.cfg.Disabled("metrics-server") {
		return nil
	}
	return []preflight.Port{{Host: s.cfg.AdvertiseIP().String(), Number: config.MetricsPort, Component: "metrics API (--disable metrics-server to do without)"}}
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
	return nil
}

// ensureClusterRoles puts in place the roles hw's components and joining
// agents need beyond Kubernetes' defaults.
func (s *server) ensureClusterRoles(ctx context.Context) error {
	client, err := s.admin.Client()
	if err != nil {
		return err
	}
	return rbac.Ensure(ctx, client)
}

// publishJoinInfo registers the server's token and publishes what joining
// nodes read: the CA and the settings (agents and servers), and the files
// all servers share (sealed, for servers only).
func (s *server) publishJoinInfo(ctx context.Context) error {
	client, err := s.admin.Client()
	if err != nil {
		return err
	}
	if err := token.EnsureServerBootstrap(ctx, client, s.token); err != nil {
		return err
	}
	shared, err := join.ReadShared(s.cfg.DataDir, sharedFiles(s.paths, s.layout, s.files.EncryptionConfig))
	if err != nil {
		return err
	}
	if err := join.PublishServerFiles(ctx, client, s.token, shared); err != nil {
		return err
	}
	clientCA, err := os.ReadFile(s.pki.ClientCA.CertFile)
	if err != nil {
		return err
	}
	return join.Publish(ctx, client, s.cfg.AdvertiseURL(), s.pki.ServerCA.CertPEM(), join.Settings{
		ClusterCIDR:          s.cfg.ClusterCIDR.String(),
		ServiceCIDR:          s.cfg.ServiceCIDR.String(),
		ClusterDNS:           s.cfg.ClusterDNS.String(),
		ClusterDomain:        s.cfg.ClusterDomain,
		FlannelBackend:       s.cfg.FlannelBackend,
		DisableNetworkPolicy: s.cfg.DisableNetworkPolicy,
		ClientCA:             string(clientCA),
	})
}

// writeAddOns renders the packaged add-ons into the manifests folder and
// removes the disabled ones, before the auto-deploy controller reads it.
func (s *server) writeAddOns(ctx context.Context) error {
	changes, err := addons.Write(s.paths.Manifests, manifests.Settings{
		ClusterDNS:     s.cfg.ClusterDNS.String(),
		ClusterDomain:  s.cfg.ClusterDomain,
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
		out = append(out, s.elected(localpath.NewProvisioner(s.admin), "hw-local-path-provisioner"))
	}
	if !s.cfg.Disabled("servicelb") {
		out = append(out, s.elected(servicelb.NewController(s.admin), "hw-servicelb"))
	}
	if !s.cfg.Disabled("metrics-server") {
		out = append(out, metrics.New(metrics.Config{
			Addr:              net.JoinHostPort(s.cfg.AdvertiseIP().String(), fmt.Sprint(config.MetricsPort)),
			ServingCert:       s.layout.MetricsServing.CertFile,
			ServingKey:        s.layout.MetricsServing.KeyFile,
			RequestHeaderCA:   s.layout.RequestHeaderCA.CertFile,
			KubeletClientCert: s.layout.APIServerKubeletClient.CertFile,
			KubeletClientKey:  s.layout.APIServerKubeletClient.KeyFile,
			KubeletCA:         s.layout.ServerCA.CertFile,
			Clients:           s.admin,
		}))
	}
	return out
}

func (s *server) kubeconfig(name string) string {
	return filepath.Join(s.paths.Cred, name+".kubeconfig")
}

func (s *server) ensureToken(ctx context.Context) error {
	t, err := token.EnsureServerToken(s.paths.Token, s.pki.ServerCA.CertPEM(), s.cfg.Token)
	s.token = t
	return err
}

// etcdPeerURL is where this server's etcd member meets the others.
func (s *server) etcdPeerURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(s.cfg.NodeIP.String(), fmt.Sprint(config.EtcdPeerPort)))
}

// etcdConfig is this server's etcd member.
func (s *server) etcdConfig() etcd.Config {
	p := s.layout
	c := etcd.Config{
		Name:          s.cfg.NodeName,
		DataDir:       s.paths.Etcd,
		ClientURL:     config.EtcdClientURL(),
		NodeClientURL: s.cfg.EtcdNodeClientURL(),
		PeerURL:       s.etcdPeerURL(),
		ServerCA:      p.EtcdServerCA.CertFile,
		ServerCert:    p.EtcdServer.CertFile,
		ServerKey:     p.EtcdServer.KeyFile,
		PeerCA:        p.EtcdPeerCA.CertFile,
		PeerCert:      p.EtcdPeer.CertFile,
		PeerKey:       p.EtcdPeer.KeyFile,
		ExtraArgs:     s.cfg.ExtraArgs.Etcd,
		Debug:         s.cfg.Debug,
		AfterReady:    s.promoteEtcd,
	}
	if s.cfg.Server != "" {
		c.Join, c.Rejoin = s.joinEtcd, s.leaveStaleEtcd
	}
	return c
}

// controlPlane lists the control plane in start order, configured from the
// file layout (the files are written by earlier steps).
func (s *server) controlPlane() []lifecycle.Component {
	cfg, p := s.cfg, s.layout
	etcdURL, etcdCA, etcdCert, etcdKey := config.EtcdClientURL(), p.EtcdServerCA.CertFile, p.EtcdClient.CertFile, p.EtcdClient.KeyFile
	checks := []healthz.HealthChecker{s.quorum.ReadyzCheck()}
	var out []lifecycle.Component
	if d := cfg.Datastore; cfg.External() {
		etcdURL, etcdCA, etcdCert, etcdKey = strings.Join(d.Endpoints, ","), d.CAFile, d.CertFile, d.KeyFile
		checks = nil
	} else {
		out = append(out, etcd.New(s.etcdConfig()))
	}
	return append(out,
		apiserver.New(apiserver.Config{
			Identity:             cfg.NodeName,
			ReadyzChecks:         checks,
			AdvertiseIP:          cfg.AdvertiseIP(),
			BindAddress:          cfg.BindAddress,
			Port:                 cfg.HTTPSPort,
			ServiceCIDR:          cfg.ServiceCIDR.String(),
			ClusterDomain:        cfg.ClusterDomain,
			EtcdURL:              etcdURL,
			EtcdCA:               etcdCA,
			EtcdCert:             etcdCert,
			EtcdKey:              etcdKey,
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
		s.elected(controllermanager.New(controllermanager.Config{
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
		}), "kube-controller-manager"),
		s.elected(scheduler.New(scheduler.Config{
			Kubeconfig: s.kubeconfig("scheduler"),
			Port:       config.SchedulerPort,
			ExtraArgs:  cfg.ExtraArgs.Scheduler,
		}), "kube-scheduler"),
	)
}

// serverFinalizers hold a server's Node, once deleted, until its embedded
// etcd member is removed (etcdcluster.Remover).
func serverFinalizers(cfg *config.Server) []string {
	if cfg.External() {
		return nil
	}
	return []string{etcdcluster.MemberFinalizer}
}

// etcdClientTLS is the TLS configuration of this server's etcd clients.
func (s *server) etcdClientTLS() (*tls.Config, error) {
	local, err := snapshot.LocalEtcd(s.paths.TLS, config.EtcdClientURL())
	return local.TLS, err
}

// elected runs c on one server of the cluster at a time: the holder of the
// Lease kube-system/lease (the same names upstream's components use).
func (s *server) elected(c lifecycle.Component, lease string) lifecycle.Component {
	return leader.New(c, leader.Config{Lease: lease, Identity: s.cfg.NodeName, Clients: s.admin})
}
