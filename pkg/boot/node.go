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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	nodeutil "k8s.io/kubernetes/pkg/util/node"

	"github.com/hw-k8s/hw/pkg/assets"
	"github.com/hw-k8s/hw/pkg/component/containerd"
	"github.com/hw-k8s/hw/pkg/component/dns"
	"github.com/hw-k8s/hw/pkg/component/flannel"
	"github.com/hw-k8s/hw/pkg/component/kubelet"
	"github.com/hw-k8s/hw/pkg/component/kubeproxy"
	"github.com/hw-k8s/hw/pkg/component/netpol"
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
	ServiceCIDR   string
	ClusterDNS    net.IP
	ClusterDomain string
	// ClientCA verifies the apiserver's requests to the kubelet.
	ClientCA string
	// Kubelet serving certificate, signed by the server CA.
	ServingCert, ServingKey string
	// Labels the node gets once registered, set with Labeler's rights:
	// NodeRestriction forbids a kubelet to give itself a role.
	Labels map[string]string
	// NodeLabels and NodeTaints are the user's --node-label and
	// --node-taint: the kubelet registers with those it may set; the
	// others (servers only) are set through Labeler.
	NodeLabels, NodeTaints []string
	Finalizers             []string
	Labeler                *kubeclient.Shared
	ExtraKubelet           []string
	ExtraKubeProxy         []string
	// FlannelBackend is a config.Flannel* value; FlannelIface may name the
	// interface between nodes.
	FlannelBackend string
	FlannelIface   string
	// NetworkPolicy: enforce NetworkPolicies on this node (the cluster's
	// --disable-network-policy turns it off).
	NetworkPolicy bool
	// Snapshotter is the user's --snapshotter; empty: detect.
	Snapshotter string
	Debug       bool
}

// node boots containerd, kubelet and kube-proxy and wires the pod network.
// Its components are built up front, from the configuration alone, so the
// plan can check them all before anything starts.
type node struct {
	cfg    nodeConfig
	paths  config.Paths
	assets *assets.Set
	// clients is the node's own identity (its kubelet's credentials).
	clients *kubeclient.Shared

	containerd *containerd.Containerd
	kubelet    lifecycle.Component
	proxy      kubeproxy.Config
	kubeProxy  lifecycle.Component
	dns        lifecycle.Component
	flannel    *flannel.Flannel // nil when the user brings their own CNI
	// netpol enforces NetworkPolicies on the pod network hw owns.
	netpol *netpol.Controller
}

// newNode builds the node's components; set is the programs hw carries.
func newNode(cfg nodeConfig, set *assets.Set) *node {
	paths := config.PathsFor(cfg.DataDir)
	n := &node{cfg: cfg, paths: paths, assets: set, clients: kubeclient.NewShared(paths.KubeletConfig)}
	n.proxy = kubeproxy.Config{
		NodeName:    cfg.Name,
		Kubeconfig:  paths.KubeProxyConfig,
		ClusterCIDR: cfg.ClusterCIDR.String(),
		ExtraArgs:   cfg.ExtraKubeProxy,
	}
	n.containerd = containerd.New(containerd.Config{
		Root:                paths.ContainerdRoot,
		State:               paths.ContainerdState,
		Address:             paths.ContainerdSocket,
		ConfigFile:          paths.ContainerdConfig,
		BinDir:              n.binDir(),
		CNIBinDirs:          n.cniBinDirs(),
		CNIConfDir:          n.cniConfDir(),
		PauseImage:          assets.PauseImageRef,
		Snapshotter:         n.snapshotter(),
		RestrictOOMScoreAdj: !hostinfo.HasSysResource(),
		ShimPath:            n.shimPath(),
		Debug:               cfg.Debug,
	})
	n.kubelet = kubelet.New(kubelet.Config{
		NodeName:      cfg.Name,
		NodeIP:        cfg.IP,
		Kubeconfig:    paths.KubeletConfig,
		ClientCA:      cfg.ClientCA,
		ServingCert:   cfg.ServingCert,
		ServingKey:    cfg.ServingKey,
		RuntimeSocket: paths.ContainerdSocket,
		StaticPodDir:  paths.PodManifests,
		ClusterDNS:    cfg.ClusterDNS,
		ClusterDomain: cfg.ClusterDomain,
		ResolvConf:    kubelet.ResolvConf(),
		CgroupDriver:  kubelet.CgroupDriver(),
		PluginDir:     paths.KubeletPlugins,
		Labels:        kubeletLabels(cfg.NodeLabels),
		Taints:        cfg.NodeTaints,
		ExtraArgs:     cfg.ExtraKubelet,
	})
	n.kubeProxy = kubeproxy.New(n.proxy)
	n.dns = dns.New(dns.Config{
		NodeName:   cfg.Name,
		Clients:    n.clients,
		Kubeconfig: paths.KubeletConfig,
		ClusterIP:  cfg.ClusterDNS,
		Dir:        paths.DNS,
		NFTables:   n.proxy.Mode() == "nftables",
	})
	if n.ownsPodNetwork() {
		n.flannel = flannel.New(flannel.Config{
			NodeName:    cfg.Name,
			Kubeconfig:  paths.FlannelConfig,
			ClusterCIDR: cfg.ClusterCIDR,
			Backend:     cfg.FlannelBackend,
			Iface:       cfg.FlannelIface,
			NodeIP:      cfg.IP,
			Dir:         paths.FlannelDir,
			SubnetFile:  paths.FlannelSubnetFile,
			NFTables:    n.proxy.Mode() == "nftables",
		})
		n.netpol = netpol.New(netpol.Config{
			NodeName: cfg.Name,
			// Flannel's identity may read what the controller watches
			// cluster-wide (rbac's network-policy role); a kubelet's may not.
			Kubeconfig:  paths.FlannelConfig,
			ServiceCIDR: cfg.ServiceCIDR,
			Disabled:    !cfg.NetworkPolicy,
		})
	}
	return n
}

// steps are the node's part of a plan: containerd and the images first
// (kubelet needs the runtime and the pause image), then kubelet, kube-proxy
// and the node's add-ons, then the pod network, which needs the pod subnet
// the controller-manager gives the registered node.
func (n *node) steps() []lifecycle.Step {
	steps := []lifecycle.Step{
		lifecycle.Phase("assets", n.extractAssets),
		lifecycle.Start(n.containerd),
		lifecycle.Phase("images", n.importImages),
		lifecycle.Phase("node-dirs", n.makeDirs),
		lifecycle.Start(n.kubelet),
		lifecycle.Start(n.kubeProxy),
		lifecycle.Start(n.dns),
		lifecycle.Start(&localpath.Cleaner{NodeName: n.cfg.Name, Clients: n.clients, Dir: n.paths.Storage}),
		lifecycle.Start(&servicelb.Reporter{NodeName: n.cfg.Name, Clients: n.clients}),
	}
	if !n.ownsPodNetwork() {
		return append(steps,
			lifecycle.Phase("node-registered", n.waitRegistered),
			lifecycle.Phase("node-labels", n.label),
		)
	}
	return append(steps,
		lifecycle.Phase("pod-subnet", n.waitPodSubnet),
		lifecycle.Start(n.flannel),
		// Before the CNI config: no pod of this node runs unfiltered.
		lifecycle.Start(n.netpol),
		lifecycle.Phase("pod-network", n.writeCNIConfig),
		lifecycle.Phase("node-labels", n.label),
		lifecycle.Phase("node-ready", n.waitReady),
	)
}

// nodeTools are host programs the node needs besides kube-proxy's: kubelet
// mounts volumes with mount(8).
var nodeTools = []preflight.Tool{{Name: "mount", Package: "mount"}, {Name: "umount", Package: "mount"}}

// tools are the host programs the node's components run.
func (n *node) tools() ([]preflight.Tool, string) {
	tools := append(kubeproxy.RequiredTools(n.proxy.Mode()), nodeTools...)
	user := "the node (kubelet, kube-proxy in " + n.proxy.Mode() + " mode"
	if n.enforcesPolicies() {
		tools = append(tools, netpol.RequiredTools...)
		user += ", network policies: --disable-network-policy to do without"
	}
	return tools, user + ")"
}

// enforcesPolicies is whether this node runs the NetworkPolicy controller.
func (n *node) enforcesPolicies() bool { return n.ownsPodNetwork() && n.cfg.NetworkPolicy }

// preflight refuses a host without the node's tools or the pod network's
// kernel support, and logs the host checks that are not ok (as
// `hw check-config` prints them): a kernel feature may be there in a way
// the checks cannot see, so only the tools stop the start.
func (n *node) preflight(ctx context.Context) error {
	tools, user := n.tools()
	if err := preflight.CheckTools(user, tools, nil); err != nil {
		return err
	}
	log := klog.FromContext(ctx)
	for _, f := range hostFindings() {
		if f.Status != preflight.OK {
			log.Info("Host check", "check", f.Check, "status", string(f.Status), "detail", f.Detail)
		}
	}
	return flannel.CheckKernel(n.cfg.FlannelBackend)
}

func (n *node) extractAssets(ctx context.Context) error {
	count, err := n.assets.Extract(n.cfg.DataDir)
	if err != nil {
		return err
	}
	if count > 0 {
		klog.FromContext(ctx).Info("Extracted runc, the shim, CNI plugins and the pause image", "dir", n.assets.Dir(n.cfg.DataDir), "files", count)
	}
	// Shims inherit hw's environment and look some tools up by name (runc for
	// -info and cleanup), so hw's own programs go first on PATH.
	bin := n.binDir()
	if !strings.HasPrefix(os.Getenv("PATH"), bin+":") {
		os.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	}
	return nil
}

func (n *node) binDir() string { return n.assets.BinDir(n.cfg.DataDir) }

// shimPath is containerd's runc shim, one of the assets: a 15 MiB program
// that starts in milliseconds, where hw itself would cost every pod 0.15 s
// and 180 MiB just to initialise.
func (n *node) shimPath() string { return filepath.Join(n.binDir(), "containerd-shim-runc-v2") }

func (n *node) snapshotter() string {
	return hostinfo.Snapshotter(n.cfg.Snapshotter, hostinfo.OverlaySupported())
}

// makeDirs makes the folders kubelet expects to exist.
func (n *node) makeDirs(ctx context.Context) error {
	for _, dir := range []string{n.paths.PodManifests, n.cniConfDir(), n.paths.KubeletPlugins} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// writeCNIConfig writes the pod network's CNI config for the subnet flannel
// leased; containerd picks it up and pods can start.
func (n *node) writeCNIConfig(ctx context.Context) error {
	subnet, mtu := n.flannel.Lease()
	return network.WriteCNIConfig(n.paths.CNIConfDir, n.paths.PodIPAM, subnet.String(), mtu)
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
	dirs := []string{n.binDir()}
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

// waitPodSubnet waits for the controller-manager to give this node its pod
// subnet, which flannel then leases.
func (n *node) waitPodSubnet(ctx context.Context) error {
	client, err := n.clients.Client()
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
	client, err := n.clients.Client()
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

// kubeletLabels are the --node-label values a kubelet may set itself.
func kubeletLabels(labels []string) []string {
	var out []string
	for _, l := range labels {
		if key, _, err := config.ParseNodeLabel(l); err == nil && config.KubeletMayLabel(key) {
			out = append(out, l)
		}
	}
	return out
}

// label sets, with the Labeler's rights, the labels a kubelet may not set
// itself: hw's own (a server's role) and the user's in kubernetes.io.
func (n *node) label(ctx context.Context) error {
	if n.cfg.Labeler == nil {
		return nil
	}
	labels := map[string]any{}
	for k, v := range n.cfg.Labels {
		labels[k] = v
	}
	for _, l := range n.cfg.NodeLabels {
		if key, value, err := config.ParseNodeLabel(l); err == nil && !config.KubeletMayLabel(key) {
			labels[key] = value
		}
	}
	if len(labels) == 0 && len(n.cfg.Finalizers) == 0 {
		return nil
	}
	client, err := n.cfg.Labeler.Client()
	if err != nil {
		return err
	}
	meta := map[string]any{"labels": labels}
	if len(n.cfg.Finalizers) > 0 {
		meta["finalizers"] = n.cfg.Finalizers // merged into the list, by strategic merge
	}
	patch := fmt.Sprintf(`{"metadata":%s}`, mustJSON(meta))
	_, err = client.CoreV1().Nodes().Patch(ctx, n.cfg.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

func (n *node) waitReady(ctx context.Context) error {
	client, err := n.clients.Client()
	if err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, n.cfg.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return nodeutil.IsNodeReady(node), nil
	})
}
