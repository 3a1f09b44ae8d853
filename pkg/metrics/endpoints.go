package metrics

import (
	"context"
	"slices"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	discoveryac "k8s.io/client-go/applyconfigurations/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
)

// ServersSlice is the EndpointSlice of the metrics-server Service: every
// live server serves the metrics API, so it lists the addresses the
// apiserver keeps in the `kubernetes` Service (live apiservers only). Every
// server writes the same content, so several doing it at once agree.
const ServersSlice = "metrics-server-servers"

// mirrorServers keeps ServersSlice equal to the apiservers' addresses, on port.
func mirrorServers(ctx context.Context, client kubernetes.Interface, port int32) {
	log := klog.FromContext(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(metav1.NamespaceDefault),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=kubernetes"
		}))
	kubeSlices := factory.Discovery().V1().EndpointSlices()
	passes := kubeclient.NewPasses()
	kubeSlices.Informer().AddEventHandler(passes.Handler())
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), kubeSlices.Informer().HasSynced) {
		return
	}
	var written []string
	passes.Run(ctx, time.Minute, time.Second, func(ctx context.Context) {
		list, err := kubeSlices.Lister().List(labels.Everything())
		if err != nil {
			return
		}
		addrs := serverAddresses(list)
		if len(addrs) == 0 || slices.Equal(addrs, written) {
			return
		}
		if err := applyServersSlice(ctx, client, addrs, port); err != nil {
			log.Error(err, "Updating the metrics API's endpoints; retrying")
			return
		}
		log.V(1).Info("Metrics API endpoints", "addresses", addrs)
		written = addrs
	})
}

// serverAddresses are the ready addresses of the `kubernetes` slices, sorted.
func serverAddresses(list []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range list {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func applyServersSlice(ctx context.Context, client kubernetes.Interface, addrs []string, port int32) error {
	slice := discoveryac.EndpointSlice(ServersSlice, metav1.NamespaceSystem).
		WithLabels(map[string]string{
			discoveryv1.LabelServiceName: "metrics-server",
			discoveryv1.LabelManagedBy:   "hw.io",
		}).
		WithAddressType(discoveryv1.AddressTypeIPv4).
		WithPorts(discoveryac.EndpointPort().WithName("https").WithPort(port).WithProtocol("TCP"))
	for _, a := range addrs {
		slice.WithEndpoints(discoveryac.Endpoint().WithAddresses(a).WithConditions(discoveryac.EndpointConditions().WithReady(true)))
	}
	_, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem).Apply(ctx, slice, metav1.ApplyOptions{FieldManager: "hw", Force: true})
	return err
}
