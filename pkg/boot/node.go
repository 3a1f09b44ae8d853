package boot

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	containerdclient "github.com/containerd/containerd/v2/client"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/assets"
	"github.com/hw-k8s/hw/pkg/component/containerd"
	"github.com/hw-k8s/hw/pkg/component/dns"
	"github.com/hw-k8s/hw/pkg/component/flannel"
	"github.com/hw-k8s/hw/pkg/component/kubelet"
	"github.com/hw-k8s/hw/pkg/component/kubeproxy"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/hostinfo"
	"github.com/hw-k8s/hw/pkg/images"
	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/localpath"
	"github.com/hw-k8s/hw/pkg/network"
	"github.com/hw-k8s/hw/pkg/preflight"
	"github.com/hw-k8s/hw/pkg/servicelb"
)

// nodeConfig is what a node needs, whether its control plane runs in this
// process (hw server) or on another machine (hw agent).
type nodeConfig struct {
	DataDir       string
	Name          string
	IP            net.IP
	ClusterCIDR   *net.IPNet
	ClusterDNS    net.IP
	ClusterDomain string
	// ClientCA verifies the apiserver's requests to the kubelet.
	ClientCA string
	// Kubelet serving certificate, signed by the server CA.
	ServingCert, ServingKey string
	// Labels the node gets once registered, set with LabelKubeconfig's
	// rights: NodeRestriction forbids a kubelet to give itself a role.
	Labels          map[string]string
	LabelKubeconfig string
	ExtraKubelet    []string
	ExtraKubeProxy  []string
	// FlannelBackend is a config.Flannel* value; FlannelIface may name the
	// interface between nodes.
	FlannelBackend string
	FlannelIface   string
	// Snapshotter is the user's --snapshotter; empty: detect.
	Snapshotter string
	Debug       bool
}

// node boots containerd, kubelet and kube-proxy and wires the pod network.
type node struct {
	cfg    nodeConfig
	paths  config.Paths
	assets *assets.Set
	proxy  kubeproxy.Config
}

func newNode(cfg nodeConfig) *node {
	n := &node{cfg: cfg, paths: config.PathsFor(cfg.DataDir)}
	n.proxy = kubeproxy.Config{
		NodeName:    cfg.Name,
		Kubeconfig:  n.paths.KubeProxyConfig,
		ClusterCIDR: cfg.ClusterCIDR.String(),
		ExtraArgs:   cfg.ExtraKubeProxy,
	}
	return n
}

// nodeTools are host programs the node needs besides kube-proxy's: kubelet
// mounts volumes with mount(8).
var nodeTools = []preflight.Tool{{Name: "mount", Package: "mount"}, {Name: "umount", Package: "mount"}}

func (n *node) preflight(ctx context.Context) error {
	tools := append(kubeproxy.RequiredTools(n.proxy.Mode()), nodeTools...)
	if err := preflight.CheckTools("the node (kubelet, kube-proxy in "+n.proxy.Mode()+" mode)", tools, nil); err != nil {
		return err
	}
	return flannel.CheckKernel(n.cfg.FlannelBackend)
}

func (n *node) extractAssets(ctx context.Context) error {
	set, err := assets.Embedded()
	if err != nil {
		return err
	}
	count, err := set.Extract(n.cfg.DataDir)
	if err != nil {
		return err
	}
	n.assets = set
	if count > 0 {
		klog.FromContext(ctx).Info("Extracted runc, the shim, CNI plugins and the pause image", "dir", set.Dir(n.cfg.DataDir), "files", count)
	}
	// Shims inherit hw's environment and look some tools up by name (runc for
	// -info and cleanup), so hw's own programs go first on PATH.
	bin := set.BinDir(n.cfg.DataDir)
	if !strings.HasPrefix(os.Getenv("PATH"), bin+":") {
		os.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	}
	return nil
}

// shimPath is containerd's runc shim, one of the assets: a 15 MiB program
// that starts in milliseconds, where hw itself would cost every pod 0.15 s
// and 180 MiB just to initialise.
func (n *node) shimPath() string {
	return filepath.Join(n.assets.BinDir(n.cfg.DataDir), "containerd-shim-runc-v2")
}

func (n *node) snapshotter() string {
	return hostinfo.Snapshotter(n.cfg.Snapshotter, hostinfo.OverlaySupported())
}

// start runs the node's components under m, in order, then sets up the pod
// network and waits until the node is Ready.
func (n *node) start(ctx context.Context, m *lifecycle.Manager) error {
	if err := runPhases(ctx, []Phase{{"assets", n.extractAssets}}); err != nil {
		return err
	}
	ctr := containerd.New(containerd.Config{
		Root:                n.paths.ContainerdRoot,
		State:               n.paths.ContainerdState,
		Address:             n.paths.ContainerdSocket,
		ConfigFile:          n.paths.ContainerdConfig,
		BinDir:              n.assets.BinDir(n.cfg.DataDir),
		CNIBinDirs:          n.cniBinDirs(),
		CNIConfDir:          n.cniConfDir(),
		PauseImage:          assets.PauseImageRef,
		Snapshotter:         n.snapshotter(),
		RestrictOOMScoreAdj: !hostinfo.HasSysResource(),
		ShimPath:            n.shimPath(),
		Debug:               n.cfg.Debug,
	})
	if err := m.Start(ctx, ctr); err != nil {
		return err
	}
	if err := n.importImages(ctx); err != nil {
		return err
	}
	for _, dir := range []string{n.paths.PodManifests, n.cniConfDir(), n.paths.KubeletPlugins} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := m.Start(ctx, kubelet.New(kubelet.Config{
		NodeName:      n.cfg.Name,
		NodeIP:        n.cfg.IP,
		Kubeconfig:    n.paths.KubeletConfig,
		ClientCA:      n.cfg.ClientCA,
		ServingCert:   n.cfg.ServingCert,
		ServingKey:    n.cfg.ServingKey,
		RuntimeSocket: n.paths.ContainerdSocket,
		StaticPodDir:  n.paths.PodManifests,
		ClusterDNS:    n.cfg.ClusterDNS,
		ClusterDomain: n.cfg.ClusterDomain,
		ResolvConf:    kubelet.ResolvConf(),
		CgroupDriver:  kubelet.CgroupDriver(),
		PluginDir:     n.paths.KubeletPlugins,
		ExtraArgs:     n.cfg.ExtraKubelet,
	})); err != nil {
		return err
	}
	if err := m.Start(ctx, kubeproxy.New(n.proxy)); err != nil {
		return err
	}
	if err := m.Start(ctx, dns.New(dns.Config{
		NodeName:   n.cfg.Name,
		Kubeconfig: n.paths.KubeletConfig,
		ClusterIP:  n.cfg.ClusterDNS,
		Dir:        n.paths.DNS,
		NFTables:   n.proxy.Mode() == "nftables",
	})); err != nil {
		return err
	}
	if err := startInOrder(ctx, m,
		&localpath.Cleaner{NodeName: n.cfg.Name, Kubeconfig: n.paths.KubeletConfig, Dir: n.paths.Storage},
		&servicelb.Reporter{NodeName: n.cfg.Name, Kubeconfig: n.paths.KubeletConfig},
	); err != nil {
		return err
	}
	if !n.ownsPodNetwork() {
		return runPhases(ctx, []Phase{
			{"node-registered", n.waitRegistered},
			{"node-labels", n.label},
		})
	}
	if err := runPhases(ctx, []Phase{{"pod-subnet", n.waitPodSubnet}}); err != nil {
		return err
	}
	fl := flannel.New(flannel.Config{
		NodeName:    n.cfg.Name,
		Kubeconfig:  n.paths.FlannelConfig,
		ClusterCIDR: n.cfg.ClusterCIDR,
		Backend:     n.cfg.FlannelBackend,
		Iface:       n.cfg.FlannelIface,
		NodeIP:      n.cfg.IP,
		Dir:         n.paths.FlannelDir,
		SubnetFile:  n.paths.FlannelSubnetFile,
		NFTables:    n.proxy.Mode() == "nftables",
	})
	if err := m.Start(ctx, fl); err != nil {
		return err
	}
	return runPhases(ctx, []Phase{
		{"pod-network", func(ctx context.Context) error {
			subnet, mtu := fl.Lease()
			return network.WriteCNIConfig(n.paths.CNIConfDir, n.paths.PodIPAM, subnet.String(), mtu)
		}},
		{"node-labels", n.label},
		{"node-ready", n.waitReady},
	})
}

// ownsPodNetwork is false when the user brings their own CNI plugin
// (--flannel-backend=none): hw then runs no flannel and writes no CNI config.
func (n *node) ownsPodNetwork() bool { return n.cfg.FlannelBackend != config.FlannelNone }

// cniConfDir is where containerd reads the pod network's config: hw's own
// folder, or CNI's conventional one for a user-installed plugin.
func (n *node) cniConfDir() string {
	if n.ownsPodNetwork() {
		return n.paths.CNIConfDir
	}
	return config.HostCNIConfDir
}

// cniBinDirs are where containerd looks for CNI plugins. hw's own come first;
// a user-installed CNI puts its programs in CNI's conventional folder.
func (n *node) cniBinDirs() []string {
	dirs := []string{n.assets.BinDir(n.cfg.DataDir)}
	if !n.ownsPodNetwork() {
		dirs = append(dirs, config.HostCNIBinDir)
	}
	return dirs
}

// importImages imports the pause image hw carries and every archive in the
// airgap folder, then pins them so image garbage collection keeps them.
func (n *node) importImages(ctx context.Context) error {
	client, err := containerdclient.New(n.paths.ContainerdSocket, containerdclient.WithDefaultNamespace(images.Namespace))
	if err != nil {
		return err
	}
	defer client.Close()
	if err := os.MkdirAll(n.paths.Images, 0o755); err != nil {
		return err
	}
	files, err := images.Tarballs(n.assets.ImagesDir(n.cfg.DataDir))
	if err != nil {
		return err
	}
	airgap, err := images.Tarballs(n.paths.Images)
	if err != nil {
		return fmt.Errorf("reading %s: %w", n.paths.Images, err)
	}
	im := &images.Importer{
		Client:      client,
		Snapshotter: n.snapshotter(),
		StateFile:   filepath.Join(n.paths.Agent, "images-imported.json"),
	}
	_, err = im.ImportAll(ctx, append(files, airgap...))
	return err
}

func (n *node) nodeClient() (kubernetes.Interface, error) {
	cfg, err := kubeclient.Config(n.paths.KubeletConfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// waitPodSubnet waits for the controller-manager to give this node its pod
// subnet, which flannel then leases.
func (n *node) waitPodSubnet(ctx context.Context) error {
	client, err := n.nodeClient()
	if err != nil {
		return err
	}
	var podCIDR string
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, n.cfg.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil // not registered yet
		}
		podCIDR = node.Spec.PodCIDR
		return podCIDR != "", nil
	})
	if err != nil {
		return fmt.Errorf("node %s got no pod subnet from the controller-manager: %w", n.cfg.Name, err)
	}
	klog.FromContext(ctx).V(1).Info("Pod subnet assigned", "podCIDR", podCIDR)
	return nil
}

// waitRegistered waits for kubelet to register the Node; without a pod
// network it stays NotReady until the user installs a CNI plugin.
func (n *node) waitRegistered(ctx context.Context) error {
	client, err := n.nodeClient()
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Nodes().Get(ctx, n.cfg.Name, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("node %s did not register: %w", n.cfg.Name, err)
	}
	klog.FromContext(ctx).Info("Node registered without a pod network (--flannel-backend=none): it turns Ready once you install a CNI plugin",
		"config dir", config.HostCNIConfDir, "plugin dir", config.HostCNIBinDir)
	return nil
}

func (n *node) label(ctx context.Context) error {
	if len(n.cfg.Labels) == 0 || n.cfg.LabelKubeconfig == "" {
		return nil
	}
	cfg, err := kubeclient.Config(n.cfg.LabelKubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	labels := map[string]any{}
	for k, v := range n.cfg.Labels {
		labels[k] = v
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":%s}}`, mustJSON(labels))
	_, err = client.CoreV1().Nodes().Patch(ctx, n.cfg.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

func (n *node) waitReady(ctx context.Context) error {
	client, err := n.nodeClient()
	if err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, n.cfg.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
}
