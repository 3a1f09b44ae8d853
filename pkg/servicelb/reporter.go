package servicelb

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// recheck is how often a node looks at its listeners again: a process may
// take or free a port at any time.
const recheck = 20 * time.Second

// Reporter runs on every node and keeps PortsInUseAnnotation true.
type Reporter struct {
	lifecycle.Goroutine
	NodeName string
	Clients  *kubeclient.Shared // the node's own credentials
	// InUse reports whether something on this host listens on the port;
	// nil: try to bind it.
	InUse func(protocol corev1.Protocol, port int32) bool
}

var _ lifecycle.Component = (*Reporter)(nil)

func (r *Reporter) Name() string { return "servicelb-ports" }

// Init has nothing to check: the reporter's only setting is the node's name.
func (r *Reporter) Init(ctx context.Context) error { return nil }

func (r *Reporter) Start(ctx context.Context) error {
	client, err := r.Clients.Client()
	if err != nil {
		return err
	}
	if r.InUse == nil {
		r.InUse = portInUse
	}
	r.Go(ctx, func(ctx context.Context) error { return r.run(ctx, client) })
	return nil
}

func (r *Reporter) Ready(ctx context.Context) error { return nil }

func (r *Reporter) run(ctx context.Context, client kubernetes.Interface) error {
	log := klog.FromContext(ctx).WithName("servicelb")
	passes := kubeclient.NewPasses()
	factory, err := r.Clients.Informers()
	if err != nil {
		return err
	}
	services := factory.Core().V1().Services().Informer()
	reg, err := services.AddEventHandler(passes.Handler())
	if err != nil {
		return err
	}
	defer services.RemoveEventHandler(reg)
	r.Clients.StartInformers()
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil
	}
	store := services.GetStore()
	last := "unset"
	// Every recheck too: a process may take or free a port at any time.
	passes.Run(ctx, recheck, 0, func(ctx context.Context) {
		inUse := r.portsInUse(store.List())
		if inUse != last {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, PortsInUseAnnotation, inUse)
			if _, err := client.CoreV1().Nodes().Patch(ctx, r.NodeName, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				if ctx.Err() == nil {
					log.V(1).Info("Could not record the ports in use on the Node yet", "err", err)
				}
			} else {
				last = inUse
				log.V(1).Info("Ports of LoadBalancer Services in use on this node", "ports", inUse)
			}
		}
	})
	return nil
}

// portsInUse is the annotation's value for the Services in objs.
func (r *Reporter) portsInUse(objs []any) string {
	seen := map[string]bool{}
	taken := []string{}
	for _, o := range objs {
		svc, ok := o.(*corev1.Service)
		if !ok || !handles(svc) {
			continue
		}
		for _, p := range svc.Spec.Ports {
			k := portKey(p)
			if seen[k] {
				continue
			}
			seen[k] = true
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			if r.InUse(proto, p.Port) {
				taken = append(taken, k)
			}
		}
	}
	sort.Strings(taken)
	data, _ := json.Marshal(taken)
	return string(data)
}

// portInUse reports whether a socket on this host (this network namespace)
// listens on the port, on any address, from the kernel's socket tables.
// kube-proxy holds no socket for the ports it forwards, so hw's own
// forwarding of LoadBalancer and NodePort Services does not count.
func portInUse(protocol corev1.Protocol, port int32) bool {
	tables, state := []string{"/proc/net/tcp", "/proc/net/tcp6"}, "0A" // LISTEN
	if protocol == corev1.ProtocolUDP {
		tables, state = []string{"/proc/net/udp", "/proc/net/udp6"}, "07" // bound, unconnected
	}
	for _, t := range tables {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if listensOn(string(data), state, port) {
			return true
		}
	}
	return false
}

// listensOn scans a /proc/net/{tcp,udp}[6] table for a socket in state on port.
func listensOn(table, state string, port int32) bool {
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != state {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int32(p) == port {
			return true
		}
	}
	return false
}
