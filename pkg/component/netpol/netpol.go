// Package netpol enforces NetworkPolicies on one node, inside the hw
// process: kube-router's policy controller (iptables chains and ipsets, as
// k3s embeds it) filters the traffic of this node's pods, and a small
// reporter tells the operator, in the log and as Node Events, how many
// policies there are and how many of the node's pods they select.
package netpol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cloudnativelabs/kube-router/v2/pkg/controllers/netpol"
	"github.com/cloudnativelabs/kube-router/v2/pkg/healthcheck"
	"github.com/cloudnativelabs/kube-router/v2/pkg/options"
	"github.com/cloudnativelabs/kube-router/v2/pkg/svcip"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/preflight"
)

// resyncPeriod is how often the controller rewrites every rule even when
// nothing changed, repairing rules someone else removed.
const resyncPeriod = 5 * time.Minute

// RequiredTools are the host programs the controller runs: kube-router
// writes its rules with iptables-restore and its sets with ipset.
var RequiredTools = []preflight.Tool{
	{Name: "ipset", Package: "ipset"},
	{Name: "iptables", Package: "iptables"},
	{Name: "iptables-save", Package: "iptables"},
	{Name: "iptables-restore", Package: "iptables"},
}

// Config is what the policy controller needs on one node.
type Config struct {
	NodeName string
	// Kubeconfig is an identity that may watch pods, namespaces and
	// policies cluster-wide (flannel's, with rbac's network-policy role).
	Kubeconfig string
	// ServiceCIDR: traffic to Service addresses is filtered after
	// kube-proxy's translation, so the controller must know the range.
	ServiceCIDR string
	// NodePortRange is the apiserver's --service-node-port-range.
	NodePortRange string
	// Disabled: enforce nothing and remove the rules an earlier start made.
	Disabled bool
}

// Controller is the network-policy component.
type Controller struct {
	lifecycle.Goroutine
	cfg    Config
	router *options.KubeRouterConfig
	ready  chan struct{}
}

var _ lifecycle.Component = (*Controller)(nil)

// New returns the component; nothing runs until Start.
func New(cfg Config) *Controller {
	if cfg.NodePortRange == "" {
		cfg.NodePortRange = "30000-32767"
	}
	return &Controller{cfg: cfg, ready: make(chan struct{})}
}

func (c *Controller) Name() string { return "network-policy" }

// Init builds kube-router's configuration from hw's settings.
func (c *Controller) Init(ctx context.Context) error {
	if c.cfg.Disabled {
		return nil
	}
	if _, _, err := net.ParseCIDR(c.cfg.ServiceCIDR); err != nil {
		return fmt.Errorf("network policies: service CIDR %q: %v", c.cfg.ServiceCIDR, err)
	}
	r := options.NewKubeRouterConfig()
	r.HostnameOverride = c.cfg.NodeName
	r.ClusterIPCIDRs = []string{c.cfg.ServiceCIDR}
	r.NodePortRange = c.cfg.NodePortRange
	r.EnableIPv4 = true
	r.IPTablesSyncPeriod = resyncPeriod
	// kube-router's metrics go to a process-wide registry: two nodes in one
	// process (tests) would register them twice.
	r.MetricsEnabled = false
	c.router = r
	return nil
}

// Start runs the controller, or with Disabled removes the rules of an
// earlier start.
func (c *Controller) Start(ctx context.Context) error {
	if c.cfg.Disabled {
		c.Go(ctx, func(ctx context.Context) error {
			RemoveRules(ctx)
			close(c.ready)
			<-ctx.Done()
			return nil
		})
		return nil
	}
	if c.router == nil {
		return errors.New("started before Init")
	}
	clients := kubeclient.NewShared(c.cfg.Kubeconfig)
	client, err := clients.Client()
	if err != nil {
		return err
	}
	c.Go(ctx, func(ctx context.Context) error { return c.run(ctx, client) })
	return nil
}

// Ready waits for the first full sync of the rules: pods that start after
// it are filtered from their first packet once their policies are written.
func (c *Controller) Ready(ctx context.Context) error { return c.WaitReady(ctx, c.ready) }

func (c *Controller) run(ctx context.Context, client kubernetes.Interface) error {
	log := klog.FromContext(ctx).WithName("network-policy")
	// The controller's handlers and ours read the same informers, which
	// live as long as this component.
	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods().Informer()
	namespaces := factory.Core().V1().Namespaces().Informer()
	policies := factory.Networking().V1().NetworkPolicies().Informer()

	ranges, err := svcip.NewValidator(svcip.Config{ClusterIPCIDRs: c.router.ClusterIPCIDRs, EnableIPv4: true})
	if err != nil {
		return fmt.Errorf("network policies: %w", err)
	}
	iptables, ipsets, err := netpol.NewIPTablesHandlers(c.router)
	if err != nil {
		return fmt.Errorf("network policies: %w (is iptables installed?)", err)
	}
	npc, err := netpol.NewNetworkPolicyController(client, c.router, pods, policies, namespaces,
		&sync.Mutex{}, hostLinks{}, iptables, ipsets, ranges)
	if err != nil {
		return fmt.Errorf("network policies: %w", err)
	}
	for _, h := range []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{pods, npc.PodEventHandler}, {namespaces, npc.NamespaceEventHandler}, {policies, npc.NetworkPolicyEventHandler},
	} {
		if _, err := h.informer.AddEventHandler(h.handler); err != nil {
			return err
		}
	}
	reporter := newReporter(c.cfg.NodeName, client, pods, policies)
	stop := make(chan struct{})
	factory.Start(stop)
	defer factory.Shutdown()
	defer close(stop)
	if !cache.WaitForCacheSync(ctx.Done(), pods.HasSynced, namespaces.HasSynced, policies.HasSynced) {
		return nil
	}

	// kube-router sends a heartbeat as each full sync begins, blocking until
	// it is read. The second one means the first sync has finished: it is
	// asked for while the first runs.
	heartbeats := make(chan *healthcheck.ControllerHeartbeat)
	var wg sync.WaitGroup
	wg.Add(1)
	go npc.Run(heartbeats, stop, &wg)
	defer wg.Wait()
	go func() {
		first := true
		for {
			select {
			case <-heartbeats:
			case <-ctx.Done():
				return
			}
			if first {
				first = false
				npc.RequestFullSync()
				continue
			}
			select {
			case <-c.ready:
			default:
				log.V(1).Info("First sync of the network policy rules done")
				close(c.ready)
			}
		}
	}()
	reporter.run(ctx, log)
	return nil
}

// RemoveRules deletes every chain, rule and ipset the controller made on
// this host (hw-killall.sh does the same with the host's tools).
func RemoveRules(ctx context.Context) {
	klog.FromContext(ctx).Info("Network policies are disabled: removing the rules of earlier starts, if any")
	(&netpol.NetworkPolicyController{}).Cleanup()
}

// hostLinks reads this host's interfaces for kube-router, which finds the
// node's own address among them.
type hostLinks struct{}

func (hostLinks) LinkList(context.Context) ([]netlink.Link, error) { return netlink.LinkList() }

func (hostLinks) AddrList(_ context.Context, link netlink.Link, family int) ([]netlink.Addr, error) {
	return netlink.AddrList(link, family)
}

// onPodNetwork is whether the policies can apply to pod: it has its own
// address on the pod network (not the host's).
func onPodNetwork(pod *corev1.Pod) bool {
	return !pod.Spec.HostNetwork && pod.Status.PodIP != "" &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}
