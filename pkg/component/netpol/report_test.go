package netpol

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(namespace, name string, labels map[string]string, ip string, hostNetwork bool, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{HostNetwork: hostNetwork},
		Status:     corev1.PodStatus{PodIP: ip, Phase: phase},
	}
}

func policy(namespace string, selector map[string]string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "p"},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: selector}},
	}
}

func TestSummarize(t *testing.T) {
	pods := []*corev1.Pod{
		pod("web", "a", map[string]string{"role": "api"}, "10.42.0.5", false, corev1.PodRunning),
		pod("web", "b", map[string]string{"role": "db"}, "10.42.0.6", false, corev1.PodRunning),
		pod("other", "c", map[string]string{"role": "api"}, "10.42.0.7", false, corev1.PodRunning),
		// Not on the pod network: no policy applies, and they do not count.
		pod("web", "host", map[string]string{"role": "api"}, "192.0.2.1", true, corev1.PodRunning),
		pod("web", "pending", map[string]string{"role": "api"}, "", false, corev1.PodPending),
		pod("web", "done", map[string]string{"role": "api"}, "10.42.0.8", false, corev1.PodSucceeded),
	}
	for _, tc := range []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		want     Summary
	}{
		{"no policies", nil, Summary{Policies: 0, Selected: 0, Pods: 3}},
		{"empty selector selects its whole namespace", []*networkingv1.NetworkPolicy{policy("web", nil)}, Summary{1, 2, 3}},
		{"labels", []*networkingv1.NetworkPolicy{policy("web", map[string]string{"role": "api"})}, Summary{1, 1, 3}},
		{"another namespace's pods are not selected", []*networkingv1.NetworkPolicy{policy("other", map[string]string{"role": "db"})}, Summary{1, 0, 3}},
		{"a pod two policies select counts once", []*networkingv1.NetworkPolicy{
			policy("web", nil), policy("web", map[string]string{"role": "api"}), policy("other", nil),
		}, Summary{3, 3, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summarize(tc.policies, pods); got != tc.want {
				t.Errorf("Summarize = %+v, want %+v", got, tc.want)
			}
		})
	}
	want := "2 network policies in the cluster; 1 of this node's 3 pods on the pod network are selected by one"
	if got := (Summary{2, 1, 3}).String(); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestInitChecksTheServiceRange(t *testing.T) {
	if err := New(Config{NodeName: "n", ServiceCIDR: "bogus"}).Init(t.Context()); err == nil {
		t.Error("Init accepted service CIDR \"bogus\"")
	}
	if err := New(Config{NodeName: "n", ServiceCIDR: "bogus", Disabled: true}).Init(t.Context()); err != nil {
		t.Errorf("a disabled controller checks nothing, got %v", err)
	}
	c := New(Config{NodeName: "n", ServiceCIDR: "10.43.0.0/16"})
	if err := c.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c.router.HostnameOverride != "n" || c.router.ClusterIPCIDRs[0] != "10.43.0.0/16" || c.router.NodePortRange != "30000-32767" || c.router.MetricsEnabled {
		t.Errorf("kube-router config = %+v", c.router)
	}
}
