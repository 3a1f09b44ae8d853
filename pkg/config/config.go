// Package config holds hw's typed, validated input: what the user asked for
// through flags or the config file, plus the values derived from it.
//
// It is a leaf package: it imports nothing from hw, holds no channels, clients
// or handlers, and is never written to after Validate.
package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Defaults a k3s user will recognise.
const (
	DefaultDataDir        = "/var/lib/hw"
	DefaultConfigFile     = "/etc/hw/config.yaml"
	DefaultKubeconfigPath = "/etc/hw/hw.yaml"
	DefaultRuntimeDir     = "/run/hw"
	DefaultHTTPSPort      = 6443
	DefaultClusterCIDR    = "10.42.0.0/16"
	DefaultServiceCIDR    = "10.43.0.0/16"
	DefaultClusterDNS     = "10.43.0.10"
	DefaultClusterDomain  = "cluster.local"
	DefaultBindAddress    = "0.0.0.0"
	EtcdClientPort        = 2379
	EtcdPeerPort          = 2380
	ControllerManagerPort = 10257
	SchedulerPort         = 10259
	// MetricsPort serves metrics.k8s.io on the server's node IP (pkg/metrics).
	MetricsPort            = 10262
	defaultNodeCIDRMaskLen = 24
)

// Pod network backends (--flannel-backend).
const (
	FlannelVXLAN     = "vxlan"
	FlannelHostGW    = "host-gw"
	FlannelWireGuard = "wireguard-native"
	// FlannelNone runs no flannel: the user installs a CNI plugin of their own.
	FlannelNone = "none"
)

// Snapshotters are the valid --snapshotter values.
var Snapshotters = []string{"overlayfs", "native"}

// AddOns are the packaged add-ons, each turned off with --disable NAME.
var AddOns = []string{"coredns", "local-storage", "servicelb", "metrics-server"}

// FlannelBackends are the valid --flannel-backend values.
var FlannelBackends = []string{FlannelVXLAN, FlannelHostGW, FlannelWireGuard, FlannelNone}

// Where a user-installed CNI plugin (--flannel-backend=none) puts its config
// and programs, as CNI's own conventions have it.
const (
	HostCNIConfDir = "/etc/cni/net.d"
	HostCNIBinDir  = "/opt/cni/bin"
)

// Server is everything `hw server` was asked to do.
type Server struct {
	DataDir string
	// Server, when set, is an existing server's URL: this server joins its
	// cluster (with the server token) instead of making a new one.
	Server           string
	Token            string
	NodeName         string
	NodeIP           net.IP
	BindAddress      net.IP
	HTTPSPort        int
	AdvertiseAddress net.IP
	TLSSANs          []string
	ClusterCIDR      *net.IPNet
	ServiceCIDR      *net.IPNet
	ClusterDNS       net.IP
	ClusterDomain    string
	FlannelBackend   string
	// FlannelIface is the interface (name or address) for traffic between
	// nodes; empty: the one holding NodeIP.
	FlannelIface string
	// Snapshotter is containerd's snapshotter (overlayfs, native); empty:
	// overlayfs where the kernel has it, else native.
	Snapshotter     string
	WriteKubeconfig string
	// WriteKubeconfigMode is the file mode of the copy at WriteKubeconfig.
	WriteKubeconfigMode os.FileMode
	Disable             []string
	// DisableNetworkPolicy turns off the NetworkPolicy controller of every
	// node (a cluster-wide setting).
	DisableNetworkPolicy bool
	Debug                bool
	// EnablePprof serves Go profiles of the process on loopback.
	EnablePprof bool

	// Extra arguments, KEY=VALUE, that override hw's own for one component.
	ExtraArgs ExtraArgs
	// NodeLabels (KEY=VALUE) and NodeTaints (KEY=VALUE:EFFECT) are set on
	// the Node when it registers.
	NodeLabels, NodeTaints []string

	// Datastore, when it has endpoints, is an existing etcd cluster the
	// apiserver uses instead of an embedded etcd (none runs then).
	Datastore Datastore

	// Given names the cluster-wide settings the user set (flag, config file
	// or environment), by flag name: a joining server takes the others from
	// the cluster and is refused if one given differs.
	Given []string

	// EtcdSnapshots are the scheduled snapshots of the embedded etcd.
	EtcdSnapshots EtcdSnapshots
	// ClusterReset makes this server's etcd a single-member cluster, from
	// ClusterResetRestorePath (a snapshot) when set, then exits.
	ClusterReset            bool
	ClusterResetRestorePath string
}

// Datastore is an external etcd cluster (--datastore-endpoint…).
type Datastore struct {
	Endpoints                 []string
	CAFile, CertFile, KeyFile string
}

// External reports whether the server uses an external etcd.
func (s *Server) External() bool { return len(s.Datastore.Endpoints) > 0 }

func (d Datastore) validate() error {
	for _, e := range d.Endpoints {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("--datastore-endpoint %q: want etcd client URLs, https://HOST:2379[,https://HOST2:2379…]", e)
		}
	}
	if (d.CertFile == "") != (d.KeyFile == "") {
		return fmt.Errorf("--datastore-certfile and --datastore-keyfile go together: give both or neither")
	}
	if len(d.Endpoints) == 0 && (d.CAFile != "" || d.CertFile != "") {
		return fmt.Errorf("--datastore-cafile, --datastore-certfile and --datastore-keyfile need --datastore-endpoint")
	}
	return nil
}

// EtcdSnapshots configures scheduled etcd snapshots.
type EtcdSnapshots struct {
	Disable bool
	// Cron is a five-field cron schedule (minute hour day month weekday).
	Cron string
	// Retention is how many scheduled snapshots of this node to keep.
	Retention int
	// Name is the first part of the snapshots' file names.
	Name string
	// Dir holds the snapshots; empty: <data-dir>/server/db/snapshots.
	Dir string
	// S3, when set, receives a copy of every snapshot.
	S3 *EtcdS3
	// Compress writes snapshots zstd-compressed (--etcd-snapshot-compress).
	Compress bool
}

// EtcdS3 is an S3-compatible store for etcd snapshots (--etcd-s3…).
type EtcdS3 struct {
	// Endpoint is HOST[:PORT], without a scheme.
	Endpoint string
	Bucket   string
	// Folder is a prefix of the snapshots' object names, without slashes at
	// either end; empty: the bucket's top.
	Folder               string
	Region               string
	AccessKey, SecretKey string
	// Insecure talks plain HTTP; EndpointCA is a PEM file of CAs to trust
	// for the endpoint's certificate besides the system's.
	Insecure   bool
	EndpointCA string
}

// Defaults of the S3 flags, as k3s has them.
const (
	DefaultS3Endpoint = "s3.amazonaws.com"
	DefaultS3Region   = "us-east-1"
)

// Validate checks an S3 store's settings, naming the flag to fix.
func (s *EtcdS3) Validate() error {
	if s.Bucket == "" {
		return fmt.Errorf("--etcd-s3 needs --etcd-s3-bucket")
	}
	if s.Endpoint == "" || strings.Contains(s.Endpoint, "://") || strings.Contains(s.Endpoint, "/") {
		return fmt.Errorf("--etcd-s3-endpoint %q: want HOST or HOST:PORT, without http:// (use --etcd-s3-insecure for plain HTTP)", s.Endpoint)
	}
	if s.AccessKey == "" || s.SecretKey == "" {
		return fmt.Errorf("--etcd-s3 needs --etcd-s3-access-key and --etcd-s3-secret-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	}
	return nil
}

// Defaults of scheduled etcd snapshots, as k3s has them.
const (
	DefaultSnapshotCron      = "0 */12 * * *"
	DefaultSnapshotRetention = 5
	DefaultSnapshotName      = "etcd-snapshot"
)

// SnapshotDir is where this server keeps etcd snapshots.
func (s *Server) SnapshotDir() string {
	if s.EtcdSnapshots.Dir != "" {
		return s.EtcdSnapshots.Dir
	}
	return s.Paths().Snapshots
}

// NewServer returns a Server with every default set: what `hw server` does
// when given no flag, but for the node's name and IP, which are detected.
func NewServer() *Server {
	return &Server{
		DataDir:             DefaultDataDir,
		BindAddress:         net.ParseIP(DefaultBindAddress).To4(),
		HTTPSPort:           DefaultHTTPSPort,
		ClusterCIDR:         mustCIDR(DefaultClusterCIDR),
		ServiceCIDR:         mustCIDR(DefaultServiceCIDR),
		ClusterDNS:          net.ParseIP(DefaultClusterDNS).To4(),
		ClusterDomain:       DefaultClusterDomain,
		FlannelBackend:      FlannelVXLAN,
		WriteKubeconfig:     DefaultKubeconfigPath,
		WriteKubeconfigMode: 0o600,
		EtcdSnapshots: EtcdSnapshots{
			Cron:      DefaultSnapshotCron,
			Retention: DefaultSnapshotRetention,
			Name:      DefaultSnapshotName,
		},
	}
}

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err) // only the constants above are passed
	}
	return n
}

// ExtraArgs are the --<component>-arg passthroughs, by component.
type ExtraArgs struct {
	APIServer         []string
	ControllerManager []string
	Scheduler         []string
	Etcd              []string
	Kubelet           []string
	KubeProxy         []string
}

// Paths are the files and folders hw uses, all derived from the data dir.
type Paths struct {
	DataDir string
	// Server side.
	TLS       string // certificates and keys
	Cred      string // kubeconfigs, encryption config and other secrets
	Etcd      string // etcd's data
	Snapshots string // etcd snapshots (pkg/snapshot)
	Token     string // the join token
	Manifests string // auto-deployed manifests (pkg/deploy)
	Logs      string // audit log
	Settings  string // generated policy and config files for the control plane

	// Node side (servers run a node too).
	Agent            string
	AgentTLS         string // the node's kubelet certificates
	ContainerdRoot   string // images and snapshots
	ContainerdConfig string // generated config.toml
	CNIConfDir       string
	PodManifests     string // kubelet's static pods
	Images           string // airgap image tarballs imported on start
	KubeletConfig    string // kubelet's kubeconfig
	KubeProxyConfig  string // kube-proxy's kubeconfig
	FlannelConfig    string // flannel's kubeconfig
	KubeletPlugins   string // flexvolume plugin dir
	FlannelDir       string // flannel's network config and WireGuard key
	JoinState        string // an agent's saved CA and cluster settings
	ServerJoinState  string // a joined server's cluster settings
	Servers          string // an agent's load balancer's list of apiservers
	NodePassword     string // an agent's proof that its node name is its own
	DNS              string // the cluster DNS's Corefile as run and its imports
	Storage          string // local-path volumes (pkg/localpath)

	// Runtime, below /run/hw.
	ContainerdState   string
	ContainerdSocket  string
	FlannelSubnetFile string // flannel's lease: FLANNEL_SUBNET, FLANNEL_MTU…
	PodIPAM           string // host-local's record of the pod IPs in use
}

// PathsFor derives every path from the data dir.
func PathsFor(dataDir string) Paths {
	server := filepath.Join(dataDir, "server")
	agent := filepath.Join(dataDir, "agent")
	return Paths{
		DataDir:   dataDir,
		TLS:       filepath.Join(server, "tls"),
		Cred:      filepath.Join(server, "cred"),
		Etcd:      filepath.Join(server, "db", "etcd"),
		Snapshots: filepath.Join(server, "db", "snapshots"),
		Token:     filepath.Join(server, "token"),
		Manifests: filepath.Join(server, "manifests"),
		Logs:      filepath.Join(server, "logs"),
		Settings:  filepath.Join(server, "etc"),

		Agent:            agent,
		AgentTLS:         filepath.Join(agent, "tls"),
		ContainerdRoot:   filepath.Join(agent, "containerd"),
		ContainerdConfig: filepath.Join(agent, "etc", "containerd", "config.toml"),
		CNIConfDir:       filepath.Join(agent, "etc", "cni", "net.d"),
		PodManifests:     filepath.Join(agent, "pod-manifests"),
		Images:           filepath.Join(agent, "images"),
		KubeletConfig:    filepath.Join(agent, "kubelet.kubeconfig"),
		KubeProxyConfig:  filepath.Join(agent, "kubeproxy.kubeconfig"),
		FlannelConfig:    filepath.Join(agent, "flannel.kubeconfig"),
		KubeletPlugins:   filepath.Join(agent, "kubelet-plugins"),
		FlannelDir:       filepath.Join(agent, "etc", "flannel"),
		JoinState:        filepath.Join(agent, "join.json"),
		ServerJoinState:  filepath.Join(server, "join.json"),
		Servers:          filepath.Join(agent, "servers.json"),
		NodePassword:     filepath.Join(agent, "node-password"),
		DNS:              filepath.Join(agent, "dns"),
		Storage:          filepath.Join(dataDir, "storage"),

		ContainerdState:   filepath.Join(DefaultRuntimeDir, "containerd"),
		ContainerdSocket:  filepath.Join(DefaultRuntimeDir, "containerd", "containerd.sock"),
		FlannelSubnetFile: filepath.Join(DefaultRuntimeDir, "flannel", "subnet.env"),
		PodIPAM:           filepath.Join(DefaultRuntimeDir, "cni", "networks"),
	}
}

// Paths returns the derived paths of this server.
func (s *Server) Paths() Paths { return PathsFor(s.DataDir) }

// EtcdClientURL is where a server's etcd member serves its local clients:
// on loopback, for the apiserver and hw's own tools.
func EtcdClientURL() string { return fmt.Sprintf("https://127.0.0.1:%d", EtcdClientPort) }

// EtcdNodeClientURL is where a server's etcd member serves the other
// servers (joins, promotions), on the node's address.
func (s *Server) EtcdNodeClientURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(s.NodeIP.String(), fmt.Sprint(EtcdClientPort)))
}

// ClusterSettings are the flags whose values every server and node of a
// cluster share.
var ClusterSettings = []string{"cluster-cidr", "service-cidr", "cluster-dns", "cluster-domain", "flannel-backend", "disable-network-policy"}

// AdvertiseIP is the address the apiserver gives the cluster:
// --advertise-address, else the node's IP.
func (s *Server) AdvertiseIP() net.IP {
	if s.AdvertiseAddress != nil {
		return s.AdvertiseAddress
	}
	return s.NodeIP
}

// AdvertiseURL is the apiserver's URL as other nodes reach it.
func (s *Server) AdvertiseURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(s.AdvertiseIP().String(), fmt.Sprint(s.HTTPSPort)))
}

// APIServerURL is the URL local components use to reach the apiserver.
func (s *Server) APIServerURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d", s.HTTPSPort)
}

// FirstServiceIP is the ClusterIP of the `kubernetes` Service: the first
// address of the service range.
func (s *Server) FirstServiceIP() net.IP {
	ip := make(net.IP, len(s.ServiceCIDR.IP))
	copy(ip, s.ServiceCIDR.IP)
	ip[len(ip)-1]++
	return ip
}

// NodeCIDRMaskSize is the size of each node's pod subnet.
func (s *Server) NodeCIDRMaskSize() int { return defaultNodeCIDRMaskLen }

// Disabled reports whether the add-on or component name was turned off with --disable.
func (s *Server) Disabled(name string) bool {
	for _, d := range s.Disable {
		if d == name {
			return true
		}
	}
	return false
}

// Validate checks the relations between fields that single-flag parsing cannot.
func (s *Server) Validate() error {
	if s.DataDir == "" || !filepath.IsAbs(s.DataDir) {
		return fmt.Errorf("--data-dir %q must be an absolute path", s.DataDir)
	}
	if s.HTTPSPort <= 0 || s.HTTPSPort > 65535 {
		return fmt.Errorf("--https-listen-port %d is not a valid port (1-65535)", s.HTTPSPort)
	}
	if ones, bits := s.ClusterCIDR.Mask.Size(); bits == 32 && ones > defaultNodeCIDRMaskLen {
		return fmt.Errorf("--cluster-cidr %s is too small: it must be /%d or larger so each node gets a /%d", s.ClusterCIDR, defaultNodeCIDRMaskLen, defaultNodeCIDRMaskLen)
	}
	if ones, bits := s.ServiceCIDR.Mask.Size(); bits-ones < 8 {
		return fmt.Errorf("--service-cidr %s is too small: it needs at least 256 addresses", s.ServiceCIDR)
	}
	if s.ClusterCIDR.Contains(s.ServiceCIDR.IP) || s.ServiceCIDR.Contains(s.ClusterCIDR.IP) {
		return fmt.Errorf("--cluster-cidr %s and --service-cidr %s overlap; choose ranges that do not", s.ClusterCIDR, s.ServiceCIDR)
	}
	if !s.ServiceCIDR.Contains(s.ClusterDNS) {
		return fmt.Errorf("--cluster-dns %s is not inside --service-cidr %s", s.ClusterDNS, s.ServiceCIDR)
	}
	if s.ClusterDomain == "" || strings.HasPrefix(s.ClusterDomain, ".") || strings.HasSuffix(s.ClusterDomain, ".") {
		return fmt.Errorf("--cluster-domain %q is not a valid domain (example: cluster.local)", s.ClusterDomain)
	}
	if !slices.Contains(FlannelBackends, s.FlannelBackend) {
		return fmt.Errorf("--flannel-backend %q is not one of %s", s.FlannelBackend, strings.Join(FlannelBackends, ", "))
	}
	if err := s.EtcdSnapshots.validate(); err != nil {
		return err
	}
	if s.Server != "" {
		if err := validateServerURL(s.Server); err != nil {
			return err
		}
		if strings.TrimSpace(s.Token) == "" {
			return fmt.Errorf("--server needs --token: the server token, from <data-dir>/server/token on an existing server (or HW_TOKEN)")
		}
	}
	if err := s.Datastore.validate(); err != nil {
		return err
	}
	if s.External() && s.ClusterReset {
		return fmt.Errorf("--cluster-reset works on hw's embedded etcd; with --datastore-endpoint, restore the external etcd with its own tools")
	}
	if s.ClusterResetRestorePath != "" && !s.ClusterReset {
		return fmt.Errorf("--cluster-reset-restore-path needs --cluster-reset")
	}
	for _, d := range s.Disable {
		if !slices.Contains(AddOns, d) {
			return fmt.Errorf("--disable %q is not a packaged add-on; choose from %s", d, strings.Join(AddOns, ", "))
		}
	}
	if err := validateNodeOptions(s.NodeLabels, s.NodeTaints, false); err != nil {
		return err
	}
	return validateNode(s.NodeName, s.Snapshotter, s.ExtraArgs)
}

func (e EtcdSnapshots) validate() error {
	if e.Retention < 1 {
		return fmt.Errorf("--etcd-snapshot-retention %d: keep at least 1 snapshot", e.Retention)
	}
	if err := ValidateSnapshotName(e.Name); err != nil {
		return fmt.Errorf("--etcd-snapshot-name %q: %v", e.Name, err)
	}
	if e.Dir != "" && !filepath.IsAbs(e.Dir) {
		return fmt.Errorf("--etcd-snapshot-dir %q must be an absolute path", e.Dir)
	}
	if e.S3 != nil {
		return e.S3.Validate()
	}
	return nil
}

// ValidateSnapshotName checks a snapshot name: it starts file names.
func ValidateSnapshotName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("want a name like etcd-snapshot: no slashes, not starting with a dot")
	}
	return nil
}

// validateNode checks what servers and agents share: the node's name, its
// snapshotter and the passthrough arguments.
func validateNode(nodeName, snapshotter string, extra ExtraArgs) error {
	if snapshotter != "" && !slices.Contains(Snapshotters, snapshotter) {
		return fmt.Errorf("--snapshotter %q is not one of %s", snapshotter, strings.Join(Snapshotters, ", "))
	}
	if nodeName != strings.ToLower(nodeName) {
		return fmt.Errorf("--node-name %q must be lower case", nodeName)
	}
	for _, group := range []struct {
		flag string
		args []string
	}{
		{"--kube-apiserver-arg", extra.APIServer},
		{"--kube-controller-manager-arg", extra.ControllerManager},
		{"--kube-scheduler-arg", extra.Scheduler},
		{"--etcd-arg", extra.Etcd},
		{"--kubelet-arg", extra.Kubelet},
		{"--kube-proxy-arg", extra.KubeProxy},
	} {
		for _, a := range group.args {
			if _, _, err := SplitArg(a); err != nil {
				return fmt.Errorf("%s %q: %v", group.flag, a, err)
			}
		}
	}
	return nil
}

// SplitArg splits a KEY=VALUE passthrough argument. A leading "--" is allowed
// and dropped, so both "v=2" and "--v=2" mean the same.
func SplitArg(arg string) (key, value string, err error) {
	arg = strings.TrimLeft(arg, "-")
	key, value, ok := strings.Cut(arg, "=")
	if !ok || key == "" {
		return "", "", fmt.Errorf("want KEY=VALUE")
	}
	return key, value, nil
}

// NewAgent returns an Agent with every default set; the server and the
// token have none.
func NewAgent() *Agent { return &Agent{DataDir: DefaultDataDir} }

// Agent is everything `hw agent` was asked to do.
type Agent struct {
	DataDir string
	// Server is the https URL of a server's apiserver; Token the join token.
	Server       string
	Token        string
	NodeName     string
	NodeIP       net.IP
	FlannelIface string
	Snapshotter  string
	Debug        bool
	EnablePprof  bool
	// Only kubelet and kube-proxy run on an agent.
	ExtraArgs ExtraArgs
	// NodeLabels and NodeTaints, as Server's.
	NodeLabels, NodeTaints []string
}

// Validate checks the agent's input, naming the flag to fix.
func (a *Agent) Validate() error {
	if a.DataDir == "" || !filepath.IsAbs(a.DataDir) {
		return fmt.Errorf("--data-dir %q must be an absolute path", a.DataDir)
	}
	if a.Server == "" {
		return fmt.Errorf("--server is missing: give the server's URL, https://SERVER:6443 (or HW_URL)")
	}
	if err := validateServerURL(a.Server); err != nil {
		return err
	}
	if strings.TrimSpace(a.Token) == "" {
		return fmt.Errorf("--token is missing: use the server's <data-dir>/server/token, or one from 'hw token create' (or HW_TOKEN)")
	}
	if err := validateNodeOptions(a.NodeLabels, a.NodeTaints, true); err != nil {
		return err
	}
	return validateNode(a.NodeName, a.Snapshotter, a.ExtraArgs)
}

// validateServerURL checks a --server URL.
func validateServerURL(server string) error {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--server %q is not a URL; want https://SERVER:6443", server)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("--server %q must be https://: the token is sent only over TLS", server)
	}
	return nil
}

// Paths are the agent's files, all derived from its data dir.
func (a *Agent) Paths() Paths { return PathsFor(a.DataDir) }
