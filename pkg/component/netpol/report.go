package netpol

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hw-k8s/hw/pkg/kubeclient"
)

// EventReason is the reason of the Node Events that say what the policies
// select on that node.
const EventReason = "NetworkPolicies"

// Summary is what the policies do on one node.
type Summary struct {
	// Policies counts the NetworkPolicies in the cluster.
	Policies int
	// Selected counts the node's pods (on the pod network) that at least one
	// policy selects; Pods counts all of them.
	Selected, Pods int
}

func (s Summary) String() string {
	return fmt.Sprintf("%d network policies in the cluster; %d of this node's %d pods on the pod network are selected by one",
		s.Policies, s.Selected, s.Pods)
}

// Summarize counts, among pods (those of one node), the ones on the pod
// network and the ones a policy selects. A policy selects pods of its own
// namespace only; its peers' selectors do not count.
func Summarize(policies []*networkingv1.NetworkPolicy, pods []*corev1.Pod) Summary {
	s := Summary{Policies: len(policies)}
	selectors := map[string][]labels.Selector{}
	for _, p := range policies {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			continue // the apiserver validates selectors; nothing selected
		}
		selectors[p.Namespace] = append(selectors[p.Namespace], sel)
	}
	for _, pod := range pods {
		if !onPodNetwork(pod) {
			continue
		}
		s.Pods++
		for _, sel := range selectors[pod.Namespace] {
			if sel.Matches(labels.Set(pod.Labels)) {
				s.Selected++
				break
			}
		}
	}
	return s
}

// reporter logs and records a Node Event whenever the node's Summary changes.
type reporter struct {
	node     string
	client   kubernetes.Interface
	pods     cache.SharedIndexInformer
	policies cache.SharedIndexInformer
	passes   *kubeclient.Passes
}

func newReporter(node string, client kubernetes.Interface, pods, policies cache.SharedIndexInformer) *reporter {
	r := &reporter{node: node, client: client, pods: pods, policies: policies, passes: kubeclient.NewPasses()}
	pods.AddEventHandler(r.passes.Handler())
	policies.AddEventHandler(r.passes.Handler())
	return r
}

func (r *reporter) run(ctx context.Context, log logr.Logger) {
	recorder, stop := kubeclient.EventRecorder(ctx, r.client, corev1.EventSource{Component: "hw-network-policy", Host: r.node})
	defer stop()
	var last *Summary
	r.passes.Run(ctx, 0, time.Second, func(ctx context.Context) {
		s := Summarize(typed[*networkingv1.NetworkPolicy](r.policies.GetStore().List()), r.nodePods())
		// Pods come and go all the time: what an operator wants to know is
		// whether policies, and which of the node's pods, are in force.
		if last != nil && last.Policies == s.Policies && last.Selected == s.Selected {
			return
		}
		node, err := r.client.CoreV1().Nodes().Get(ctx, r.node, metav1.GetOptions{})
		if err != nil {
			log.V(1).Info("No Event for the network policies yet", "err", err)
			r.passes.Notify()
			return
		}
		log.Info("Network policies in force on this node", "policies", s.Policies, "selectedPods", s.Selected, "pods", s.Pods)
		recorder.Event(node, corev1.EventTypeNormal, EventReason, s.String())
		last = &s
	})
}

// nodePods are the pods scheduled to this node.
func (r *reporter) nodePods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range typed[*corev1.Pod](r.pods.GetStore().List()) {
		if p.Spec.NodeName == r.node {
			out = append(out, p)
		}
	}
	return out
}

func typed[T any](objs []any) []T {
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}
