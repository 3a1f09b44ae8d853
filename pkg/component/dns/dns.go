// Package dns is the cluster DNS: CoreDNS, compiled into hw, answering on the
// cluster DNS address on every node. No pod and no image: DNS works on a
// machine that has never reached a registry, and an agent cut off from the
// server keeps answering from its cache of Services.
//
// The Corefile is the ConfigMap kube-system/coredns (a packaged manifest);
// every node watches it and reloads CoreDNS when it changes. The keys of
// kube-system/coredns-custom named *.override and *.server are imported into
// it. While kube-system/coredns does not exist (`--disable coredns`), nodes
// answer nothing on the address, so a DNS of the user's own can take it.
package dns

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"

	// The plugins hw's CoreDNS has: what the packaged Corefile uses, and the
	// ones users most often add (hosts, rewrite, log, template).
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/template"
)

const (
	namespace = "kube-system"
	// ConfigMap holds the Corefile (key Corefile).
	ConfigMap = "coredns"
	// CustomConfigMap holds the user's additions, kept across hw restarts.
	CustomConfigMap = "coredns-custom"
	corefileKey     = "Corefile"
	// firstSyncWait bounds how long start-up waits for the ConfigMaps: an
	// agent restarting while the server is away still starts its node.
	firstSyncWait = 30 * time.Second
)

func init() {
	caddy.Quiet = true
	dnsserver.Quiet = true
}

// Config is what a node's DNS needs.
type Config struct {
	NodeName string
	// Clients are the node's own (its kubelet's) credentials; Kubeconfig is
	// the same identity as a file, for CoreDNS's kubernetes plugin.
	Clients    *kubeclient.Shared
	Kubeconfig string
	// ClusterIP is --cluster-dns.
	ClusterIP net.IP
	// Dir holds the Corefile as run and the custom/ imports.
	Dir string
	// NFTables: kube-proxy runs in nftables mode, so the host may have no iptables.
	NFTables bool
}

// DNS is the node's DNS component.
type DNS struct {
	lifecycle.Goroutine
	cfg       Config
	net       hostNetwork
	firstSync chan struct{}

	mu       sync.Mutex
	instance *caddy.Instance
	// running is the checksum of the Corefile and imports being served.
	running string
}

var _ lifecycle.Component = (*DNS)(nil)

// New returns the component; nothing runs until Start.
func New(cfg Config) *DNS {
	return &DNS{cfg: cfg, net: hostNetwork{ip: cfg.ClusterIP, nft: cfg.NFTables}, firstSync: make(chan struct{})}
}

func (d *DNS) Name() string { return "dns" }

// Init checks the settings the Corefile is made from.
func (d *DNS) Init(ctx context.Context) error {
	if d.cfg.ClusterIP.To4() == nil {
		return fmt.Errorf("cluster DNS address %q is not an IPv4 address", d.cfg.ClusterIP)
	}
	return nil
}

func (d *DNS) Start(ctx context.Context) error {
	client, err := d.cfg.Clients.Client()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.cfg.Dir, 0o700); err != nil {
		return err
	}
	d.Go(ctx, func(ctx context.Context) error { return d.run(ctx, client) })
	return nil
}

// Ready returns once the ConfigMaps were read and CoreDNS serves (or is off),
// or after firstSyncWait when the apiserver cannot be reached.
func (d *DNS) Ready(ctx context.Context) error {
	select {
	case <-d.firstSync:
	case <-time.After(firstSyncWait):
		klog.FromContext(ctx).Info("Cluster DNS not configured yet: the ConfigMap kube-system/coredns could not be read; it starts once it can", "waited", firstSyncWait)
	case <-d.Done():
		return fmt.Errorf("dns stopped: %v", d.Err())
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (d *DNS) run(ctx context.Context, client kubernetes.Interface) error {
	log := klog.FromContext(ctx).WithName("dns")
	ctx = klog.NewContext(ctx, log)
	recorder, stopEvents := kubeclient.EventRecorder(ctx, client, corev1.EventSource{Component: "hw-dns", Host: d.cfg.NodeName})
	defer stopEvents()

	passes := kubeclient.NewPasses()
	handler := passes.Handler()
	var stores []cache.Store
	var synced []cache.InformerSynced
	// Two watches scoped by name, not the node's shared ConfigMap informer:
	// that would cache every ConfigMap of kube-system on every node.
	for _, name := range []string{ConfigMap, CustomConfigMap} {
		lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "configmaps", namespace, fields.OneTermEqualSelector("metadata.name", name))
		store, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{ListerWatcher: lw, ObjectType: &corev1.ConfigMap{}, Handler: handler})
		go ctrl.RunWithContext(ctx)
		stores = append(stores, store)
		synced = append(synced, ctrl.HasSynced)
	}
	defer d.stopInstance(log)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	// A burst of edits settles for 200 ms before it is applied.
	passes.Run(ctx, 0, 200*time.Millisecond, func(ctx context.Context) {
		d.sync(ctx, recorder, configMapIn(stores[0], ConfigMap), configMapIn(stores[1], CustomConfigMap))
		select {
		case <-d.firstSync:
		default:
			close(d.firstSync)
		}
	})
	return nil
}

func configMapIn(store cache.Store, name string) *corev1.ConfigMap {
	obj, ok, _ := store.GetByKey(namespace + "/" + name)
	if !ok {
		return nil
	}
	return obj.(*corev1.ConfigMap)
}

// sync makes the node serve what the ConfigMaps say. A Corefile CoreDNS
// rejects leaves the previous one serving and is reported as an Event on the
// ConfigMap and in hw's log.
func (d *DNS) sync(ctx context.Context, recorder record.EventRecorder, main, custom *corev1.ConfigMap) {
	log := klog.FromContext(ctx)
	if main == nil {
		if d.stopInstance(log) {
			log.Info("Cluster DNS off: ConfigMap kube-system/coredns is gone", "address", d.cfg.ClusterIP)
		}
		if err := d.net.remove(); err != nil {
			log.Error(err, "Removing the cluster DNS address")
		}
		return
	}
	var customData map[string]string
	if custom != nil {
		customData = custom.Data
	}
	if _, err := writeCustom(filepath.Join(d.cfg.Dir, "custom"), customData); err != nil {
		log.Error(err, "Writing coredns-custom's entries", "dir", d.cfg.Dir)
		return
	}
	corefile := withKubeconfig(main.Data[corefileKey], d.cfg.Kubeconfig)
	path := filepath.Join(d.cfg.Dir, "Corefile")
	if err := os.WriteFile(path, []byte(corefile), 0o600); err != nil {
		log.Error(err, "Writing the Corefile", "path", path)
		return
	}
	sum := checksum(corefile, customData)
	d.mu.Lock()
	defer d.mu.Unlock()
	if sum == d.running {
		return
	}
	if err := d.net.ensure(); err != nil {
		log.Error(err, "Cluster DNS cannot answer on this node")
		recorder.Eventf(main, corev1.EventTypeWarning, "DNSNetworkFailed", "node %s: %v", d.cfg.NodeName, err)
		return
	}
	input := caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: path, ServerTypeName: "dns"}
	var inst *caddy.Instance
	var err error
	if d.instance == nil {
		inst, err = caddy.Start(input)
	} else {
		inst, err = d.instance.Restart(input)
	}
	if err != nil {
		what := "CoreDNS did not start"
		if d.instance != nil {
			what = "CoreDNS kept the previous Corefile"
		}
		log.Error(err, what+": fix the ConfigMap", "configmap", "kube-system/coredns")
		recorder.Eventf(main, corev1.EventTypeWarning, "CorefileRejected", "node %s: %s: %v", d.cfg.NodeName, what, err)
		return
	}
	verb := "Cluster DNS serving"
	if d.instance != nil {
		verb = "Cluster DNS reloaded"
		recorder.Eventf(main, corev1.EventTypeNormal, "CorefileLoaded", "node %s: serving the new Corefile", d.cfg.NodeName)
	}
	d.instance, d.running = inst, sum
	log.Info(verb, "address", d.cfg.ClusterIP, "corefile", path)
}

// stopInstance stops CoreDNS if it runs and reports whether it did.
func (d *DNS) stopInstance(log klog.Logger) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.instance == nil {
		return false
	}
	if err := d.instance.Stop(); err != nil {
		log.Error(err, "Stopping CoreDNS")
	}
	d.instance.Wait()
	d.instance, d.running = nil, ""
	return true
}

func checksum(corefile string, custom map[string]string) string {
	h := sha256.New()
	h.Write([]byte(corefile))
	for _, k := range slices.Sorted(maps.Keys(custom)) {
		fmt.Fprintf(h, "\x00%s\x00%s", k, custom[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}
