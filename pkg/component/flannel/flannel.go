// Package flannel runs flannel inside the hw process: it takes the node's pod
// subnet from the Node object (the controller-manager assigns it), connects
// the nodes' pod subnets with the chosen backend, and masquerades pod traffic
// that leaves the cluster network.
package flannel

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/flannel-io/flannel/pkg/backend"
	"github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/ipmatch"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	"github.com/flannel-io/flannel/pkg/trafficmngr"
	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	"github.com/flannel-io/flannel/pkg/trafficmngr/nftables"
	"k8s.io/klog/v2"

	// Backends register themselves with flannel's backend manager.
	_ "github.com/flannel-io/flannel/pkg/backend/hostgw"
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan"
	_ "github.com/flannel-io/flannel/pkg/backend/wireguard"

	"github.com/hw-k8s/hw/pkg/atomicfile"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// The --flannel-backend values; config validates them.
const (
	BackendVXLAN     = config.FlannelVXLAN
	BackendHostGW    = config.FlannelHostGW
	BackendWireGuard = config.FlannelWireGuard
)

// annotationPrefix is where flannel keeps each node's backend data on the
// Node object; the standard prefix, so flannel tools recognise it.
const annotationPrefix = "flannel.alpha.coreos.com"

// resyncSeconds is how often flannel re-checks its iptables/nftables rules.
const resyncSeconds = 60

// Config is what flannel needs on one node.
type Config struct {
	NodeName    string
	Kubeconfig  string
	ClusterCIDR *net.IPNet
	Backend     string
	// Iface is the interface (name or address) that carries traffic between
	// nodes; empty: the one holding NodeIP.
	Iface  string
	NodeIP net.IP
	// Dir holds flannel's network config and WireGuard key.
	Dir string
	// SubnetFile is where the lease is recorded (FLANNEL_SUBNET, FLANNEL_MTU…).
	SubnetFile string
	// NFTables makes flannel write its rules with nftables instead of iptables.
	NFTables bool
}

// Flannel is the flannel component.
type Flannel struct {
	lifecycle.Goroutine
	cfg   Config
	ready chan struct{}
	// netConf is flannel's net-conf.json as Init rendered it.
	netConf []byte

	mu     sync.Mutex
	subnet *net.IPNet
	mtu    int
}

var _ lifecycle.Component = (*Flannel)(nil)

// New returns the flannel component; nothing runs until Start.
func New(cfg Config) *Flannel { return &Flannel{cfg: cfg, ready: make(chan struct{})} }

func (f *Flannel) Name() string { return "flannel" }

// NetConf is flannel's network config for these settings.
func (c Config) NetConf() ([]byte, error) {
	be := map[string]any{}
	switch c.Backend {
	case BackendVXLAN:
		be["Type"] = "vxlan"
	case BackendHostGW:
		be["Type"] = "host-gw"
	case BackendWireGuard:
		// Keepalives hold NAT mappings open for nodes behind a home router.
		be["Type"] = "wireguard"
		be["PersistentKeepaliveInterval"] = 25
	default:
		return nil, fmt.Errorf("--flannel-backend %q is not one of %s", c.Backend, strings.Join(config.FlannelBackends, ", "))
	}
	return json.Marshal(map[string]any{
		"Network":        c.ClusterCIDR.String(),
		"EnableIPv4":     true,
		"EnableNFTables": c.NFTables,
		"Backend":        be,
	})
}

// Init renders flannel's network config.
func (f *Flannel) Init(ctx context.Context) error {
	netConf, err := f.cfg.NetConf()
	if err != nil {
		return err
	}
	f.netConf = netConf
	return nil
}

// Start writes flannel's config and runs it in the background.
func (f *Flannel) Start(ctx context.Context) error {
	netConf := f.netConf
	if netConf == nil {
		return errors.New("started before Init")
	}
	if err := CheckKernel(f.cfg.Backend); err != nil {
		return err
	}
	if err := os.MkdirAll(f.cfg.Dir, 0o700); err != nil {
		return err
	}
	confPath := filepath.Join(f.cfg.Dir, "net-conf.json")
	if err := atomicfile.Write(confPath, netConf, 0o644); err != nil {
		return err
	}
	// flannel's kube subnet manager and WireGuard backend take these from the
	// environment only; one hw process is one node, so they cannot clash.
	os.Setenv("NODE_NAME", f.cfg.NodeName)
	os.Setenv("WIREGUARD_KEY_FILE", filepath.Join(f.cfg.Dir, "wireguard.key"))
	f.Go(ctx, func(ctx context.Context) error { return f.run(ctx, confPath) })
	return nil
}

// Ready waits until the lease is held, the routes and masquerade rules are in
// place, and the subnet file is written.
func (f *Flannel) Ready(ctx context.Context) error { return f.WaitReady(ctx, f.ready) }

// Lease is this node's pod subnet and the MTU pods must use; valid once Ready.
func (f *Flannel) Lease() (*net.IPNet, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subnet, f.mtu
}

func (f *Flannel) run(ctx context.Context, confPath string) error {
	log := klog.FromContext(ctx)
	sm, err := kube.NewSubnetManager(ctx, "", f.cfg.Kubeconfig, annotationPrefix, confPath, false)
	if err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	netConfig, err := sm.GetNetworkConfig(ctx)
	if err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	extIface, err := f.externalInterface()
	if err != nil {
		return err
	}
	log.Info("Flannel starting", "backend", f.cfg.Backend, "interface", extIface.Iface.Name, "address", extIface.ExtAddr)

	// The backend's goroutines are counted in wg; they end with ctx.
	var wg sync.WaitGroup
	defer wg.Wait()
	be, err := backend.NewManager(ctx, sm, extIface).GetBackend(netConfig.BackendType)
	if err != nil {
		return fmt.Errorf("flannel backend %s: %w", f.cfg.Backend, err)
	}
	network, err := be.RegisterNetwork(ctx, &wg, netConfig)
	if err != nil {
		return fmt.Errorf("flannel backend %s: %w", f.cfg.Backend, err)
	}
	lease := network.Lease()

	var traffic trafficmngr.TrafficManager = &iptables.IPTablesManager{}
	if f.cfg.NFTables {
		traffic = &nftables.NFTablesManager{}
	}
	if err := traffic.Init(ctx); err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	// The previous lease lets flannel remove rules of a subnet it no longer has.
	prevNetwork, prevSubnet := readSubnetFile(f.cfg.SubnetFile)
	if err := traffic.SetupAndEnsureMasqRules(ctx, netConfig.Network, prevSubnet, prevNetwork,
		ip.IP6Net{}, ip.IP6Net{}, ip.IP6Net{}, lease, resyncSeconds, false); err != nil {
		return fmt.Errorf("flannel masquerade rules: %w", err)
	}
	// Hosts whose FORWARD policy is DROP (Docker sets it) still pass pod traffic.
	traffic.SetupAndEnsureForwardRules(ctx, netConfig.Network, ip.IP6Net{}, resyncSeconds)
	if err := sm.HandleSubnetFile(f.cfg.SubnetFile, netConfig, true, lease.Subnet, lease.IPv6Subnet, network.MTU()); err != nil {
		return fmt.Errorf("flannel subnet file %s: %w", f.cfg.SubnetFile, err)
	}

	f.mu.Lock()
	f.subnet, f.mtu = lease.Subnet.ToIPNet(), network.MTU()
	f.mu.Unlock()
	close(f.ready)
	log.Info("Flannel ready", "subnet", lease.Subnet, "mtu", network.MTU())

	wg.Add(1)
	go func() {
		defer wg.Done()
		network.Run(ctx)
	}()
	if err := sm.CompleteLease(ctx, lease, &wg); err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	<-ctx.Done()
	return nil
}

// externalInterface is the interface flannel sends node-to-node traffic on:
// --flannel-iface if given, else the one that holds the node IP.
func (f *Flannel) externalInterface() (*backend.ExternalInterface, error) {
	stack, err := ipmatch.GetIPFamily(true, false)
	if err != nil {
		return nil, err
	}
	if f.cfg.Iface != "" {
		ext, err := ipmatch.LookupExtIface(f.cfg.Iface, "", "", stack, ipmatch.PublicIPOpts{})
		if err != nil {
			return nil, fmt.Errorf("--flannel-iface %s: %v; name an interface (or its address) that reaches the other nodes", f.cfg.Iface, err)
		}
		return ext, nil
	}
	ext, err := ipmatch.LookupExtIface(f.cfg.NodeIP.String(), "", "", stack, ipmatch.PublicIPOpts{PublicIP: f.cfg.NodeIP.String()})
	if err != nil {
		return nil, fmt.Errorf("no interface holds the node IP %s (%v); set --node-ip or --flannel-iface", f.cfg.NodeIP, err)
	}
	return ext, nil
}

// readSubnetFile reads the network and subnet of the last run's lease; zero
// values when there was none.
func readSubnetFile(path string) (network, subnet ip.IP4Net) {
	file, err := os.Open(path)
	if err != nil {
		return
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), "=")
		if !ok {
			continue
		}
		var target *ip.IP4Net
		switch key {
		case "FLANNEL_NETWORK":
			target = &network
		case "FLANNEL_SUBNET":
			target = &subnet
		default:
			continue
		}
		// FLANNEL_SUBNET holds the bridge address (x.y.z.1/24): keep the network.
		if _, n, err := net.ParseCIDR(value); err == nil {
			*target = ip.FromIPNet(n)
		}
	}
	return
}

// CheckKernel fails with a clear message when the kernel lacks what the
// backend needs: WireGuard for wireguard-native (no module, or an old kernel).
func CheckKernel(backend string) error {
	if backend != BackendWireGuard {
		return nil
	}
	if _, err := os.Stat("/sys/module/wireguard"); err == nil {
		return nil
	}
	if err := probeWireGuard(); err != nil {
		return fmt.Errorf("--flannel-backend %s needs WireGuard in the kernel, which this host lacks (%v); load it with 'modprobe wireguard' or choose --flannel-backend %s", BackendWireGuard, err, BackendVXLAN)
	}
	return nil
}
