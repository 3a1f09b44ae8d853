package servicelb

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, ip string, ready bool, inUse string) *corev1.Node {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{}},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
		},
	}
	if inUse != "" {
		n.Annotations[PortsInUseAnnotation] = inUse
	}
	return n
}

func lb(name string, age time.Duration, ports ...int32) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: metav1.NewTime(time.Unix(1e9, 0).Add(-age))},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	for _, p := range ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: p, Protocol: corev1.ProtocolTCP})
	}
	return s
}

func TestPlan(t *testing.T) {
	nodes := []*corev1.Node{
		node("b", "10.0.0.2", true, `["TCP/6443"]`),
		node("a", "10.0.0.1", true, ""),
		node("down", "10.0.0.3", false, ""),
	}
	external := node("c", "10.0.0.4", true, "")
	external.Status.Addresses = append(external.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.4"})
	nodes = append(nodes, external)
	class := lb("classed", time.Hour, 9000)
	class.Spec.LoadBalancerClass = new(string)
	clusterIP := lb("plain", time.Hour, 9001)
	clusterIP.Spec.Type = corev1.ServiceTypeClusterIP

	ingress, problems := Plan([]*corev1.Service{
		lb("newer", time.Minute, 80), lb("older", time.Hour, 80, 443), lb("api", time.Hour, 6443), class, clusterIP,
	}, nodes)

	want := map[string][]string{
		"default/older": {"10.0.0.1", "10.0.0.2", "203.0.113.4"},
		"default/api":   {"10.0.0.1", "203.0.113.4"},
		"default/newer": nil,
	}
	if len(ingress) != len(want) {
		t.Errorf("planned %v; want only the LoadBalancer Services without a class", ingress)
	}
	for k, w := range want {
		if !slices.Equal(ingress[k], w) {
			t.Errorf("%s: ingress %v, want %v", k, ingress[k], w)
		}
	}
	if p := problems["default/api"]; len(p) != 1 || !strings.Contains(p[0].Message, "TCP/6443 is in use on node b") {
		t.Errorf("api problems %v; want node b left out for TCP/6443", p)
	}
	if p := problems["default/newer"]; len(p) != 1 || !strings.Contains(p[0].Message, "LoadBalancer default/older has it") {
		t.Errorf("newer problems %v; want the port clash with older", p)
	}
	if p := problems["default/older"]; len(p) != 0 {
		t.Errorf("older has problems %v", p)
	}
}

func TestListensOn(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0050 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
`
	if !listensOn(table, "0A", 8080) {
		t.Error("8080 is listened on")
	}
	if listensOn(table, "0A", 80) {
		t.Error("80 is only an established connection, not a listener")
	}
}
