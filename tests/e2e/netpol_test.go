//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// policyNamespace holds the pods and policies of testNetworkPolicies.
const policyNamespace = "policies"

// testNetworkPolicies checks, as a user would with kubectl exec, that the
// policies of a namespace are enforced on both nodes: a default deny, an
// allow rule for labelled clients on another node, an egress deny, and
// that deleting them opens everything again.
func testNetworkPolicies(t *testing.T, server, agent *hwNode, client kubernetes.Interface) {
	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: policyNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// Targets on both nodes; a labelled and an unlabelled client on the
	// agent; a pod in another namespace, which no policy selects.
	webServer := policyPod(t, client, policyNamespace, "web-server", server.nodeName(), map[string]string{"app": "web"})
	webAgent := policyPod(t, client, policyNamespace, "web-agent", agent.nodeName(), map[string]string{"app": "web"})
	policyPod(t, client, policyNamespace, "client", agent.nodeName(), map[string]string{"role": "client"})
	policyPod(t, client, policyNamespace, "stranger", agent.nodeName(), nil)
	elsewhere := policyPod(t, client, "default", "elsewhere", server.nodeName(), map[string]string{"app": "elsewhere"})

	reach := func(from, to string) error {
		out, err := server.kubectl(t, "exec", "-n", policyNamespace, from, "--", "/webapp", "get", "http://"+hostPort(to, 8080)+"/")
		if err != nil {
			return fmt.Errorf("%s cannot reach %s: %v: %s", from, to, err, strings.TrimSpace(out))
		}
		return nil
	}
	reaches := func(what, from, to string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func(context.Context) error { return reach(from, to) })
	}
	blocked := func(what, from, to string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func(context.Context) error {
			if reach(from, to) == nil {
				return fmt.Errorf("%s still reaches %s", from, to)
			}
			return nil
		})
	}

	reaches("client reaches web-server before any policy", "client", webServer)
	reaches("stranger reaches web-agent before any policy", "stranger", webAgent)

	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: policyNamespace},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	createPolicy(t, client, deny)
	blocked("default deny cuts web-server (other node)", "client", webServer)
	blocked("default deny cuts web-agent (same node)", "stranger", webAgent)
	blocked("default deny cuts the client itself", "stranger", podIP(t, client, policyNamespace, "client"))
	// kubelet's probes come from the node itself, which the policies let in.
	runningPods(t, client, policyNamespace, "app=web", 2)

	port := intstr.FromInt32(8080)
	createPolicy(t, client, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "clients-to-web", Namespace: policyNamespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: &port}},
			}},
		},
	})
	reaches("the labelled client on the agent reaches web-server", "client", webServer)
	reaches("the labelled client reaches web-agent", "client", webAgent)
	for i := 0; i < 3; i++ {
		if reach("stranger", webServer) == nil {
			t.Fatal("the unlabelled pod reaches web-server through a rule for role=client")
		}
	}

	reaches("stranger reaches a pod of another namespace", "stranger", elsewhere)
	createPolicy(t, client, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "stranger-no-egress", Namespace: policyNamespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "role", Operator: metav1.LabelSelectorOpDoesNotExist}, {Key: "app", Operator: metav1.LabelSelectorOpDoesNotExist}}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	})
	blocked("an egress policy with no rules cuts the stranger's outbound traffic", "stranger", elsewhere)
	reaches("the client's outbound traffic is not cut", "client", elsewhere)

	eventually(t, time.Minute, "the agent's Node has an Event saying what the policies select", func(ctx context.Context) error {
		events, err := client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + agent.nodeName() + ",reason=NetworkPolicies"})
		if err != nil {
			return err
		}
		for _, e := range events.Items {
			if strings.HasPrefix(e.Message, "3 network policies in the cluster; 3 of this node's") {
				return nil
			}
		}
		return fmt.Errorf("%d events, none about 3 policies selecting the agent's 3 pods", len(events.Items))
	})

	if err := client.NetworkingV1().NetworkPolicies(policyNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	reaches("with the policies deleted, stranger reaches web-server again", "stranger", webServer)
	reaches("and a pod of another namespace", "stranger", elsewhere)
}

// policyPod runs a webapp pod with labels on a node and returns its IP.
func policyPod(t *testing.T, client kubernetes.Interface, ns, name, node string, labels map[string]string) string {
	t.Helper()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["pod"] = name
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever,
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}},
					PeriodSeconds:    1,
					FailureThreshold: 1,
				},
			}},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return runningPods(t, client, ns, "pod="+name, 1)[0].Status.PodIP
}

func podIP(t *testing.T, client kubernetes.Interface, ns, name string) string {
	t.Helper()
	p, err := client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Status.PodIP
}

func createPolicy(t *testing.T, client kubernetes.Interface, p *networkingv1.NetworkPolicy) {
	t.Helper()
	if _, err := client.NetworkingV1().NetworkPolicies(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
