package servicelb

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// Controller is the server-side component: it writes ingress addresses.
type Controller struct {
	lifecycle.Goroutine
	clients *kubeclient.Shared
	client  kubernetes.Interface
	synced  chan struct{}
	// reported holds the problems last reported per Service, so an Event
	// is sent when they change, not on every pass.
	reported map[string][]Problem
}

var _ lifecycle.Component = (*Controller)(nil)

// NewController returns the component; nothing runs until Start.
func NewController(clients *kubeclient.Shared) *Controller {
	return &Controller{clients: clients, synced: make(chan struct{}), reported: map[string][]Problem{}}
}

func (c *Controller) Name() string { return "servicelb" }

// Init has nothing to check: the controller has no settings.
func (c *Controller) Init(ctx context.Context) error { return nil }

func (c *Controller) Start(ctx context.Context) error {
	client, err := c.clients.Client()
	if err != nil {
		return err
	}
	c.client = client
	c.Go(ctx, c.run)
	return nil
}

func (c *Controller) Ready(ctx context.Context) error { return c.WaitReady(ctx, c.synced) }

func (c *Controller) run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("servicelb")
	ctx = klog.NewContext(ctx, log)
	recorder, stopEvents := kubeclient.EventRecorder(ctx, c.client, corev1.EventSource{Component: "hw-servicelb"})
	defer stopEvents()

	factory, err := c.clients.Informers()
	if err != nil {
		return err
	}
	services := factory.Core().V1().Services()
	nodes := factory.Core().V1().Nodes()
	passes := kubeclient.NewPasses()
	var synced []cache.InformerSynced
	for _, inf := range []cache.SharedIndexInformer{services.Informer(), nodes.Informer()} {
		reg, err := inf.AddEventHandler(passes.Handler())
		if err != nil {
			return err
		}
		defer inf.RemoveEventHandler(reg)
		synced = append(synced, reg.HasSynced)
	}
	c.clients.StartInformers()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	close(c.synced)
	// Every 30 s too: a failed status update is retried.
	passes.Run(ctx, 30*time.Second, 0, func(ctx context.Context) {
		svcs, _ := services.Lister().List(labels.Everything())
		ns, _ := nodes.Lister().List(labels.Everything())
		c.apply(ctx, recorder, svcs, ns)
	})
	return nil
}

func (c *Controller) apply(ctx context.Context, recorder record.EventRecorder, svcs []*corev1.Service, nodes []*corev1.Node) {
	log := klog.FromContext(ctx)
	ingress, problems := Plan(svcs, nodes)
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		addrs, ok := ingress[key]
		if !ok {
			delete(c.reported, key)
			continue
		}
		if !slices.Equal(problems[key], c.reported[key]) {
			for _, p := range problems[key] {
				recorder.Event(svc, corev1.EventTypeWarning, p.Reason, p.Message)
				log.Info("LoadBalancer Service not answered everywhere", "service", key, "why", p.Message)
			}
			c.reported[key] = problems[key]
		}
		if slices.Equal(addrs, currentIngress(svc)) {
			continue
		}
		updated := svc.DeepCopy()
		updated.Status.LoadBalancer.Ingress = nil
		for _, a := range addrs {
			updated.Status.LoadBalancer.Ingress = append(updated.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: a, IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)})
		}
		if _, err := c.client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
			log.Error(err, "Updating the load balancer status; retrying", "service", key)
			continue
		}
		log.Info("LoadBalancer Service addresses", "service", key, "ingress", addrs)
	}
}

func currentIngress(svc *corev1.Service) []string {
	var out []string
	for _, i := range svc.Status.LoadBalancer.Ingress {
		out = append(out, i.IP)
	}
	return out
}
