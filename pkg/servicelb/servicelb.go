// Package servicelb gives Services of type LoadBalancer the addresses of the
// cluster's nodes, as k3s's ServiceLB does, without a pod per Service:
// kube-proxy already forwards traffic for a Service's load-balancer
// addresses, so listing a node's address in status.loadBalancer.ingress is
// what makes the node answer on the Service's ports.
//
// A node answers only where the port is free: every node's Reporter checks
// the ports of LoadBalancer Services against its own listeners and says
// which are taken (PortsInUseAnnotation on its Node); the server's Controller
// leaves that node out and reports it as an Event on the Service. Two
// Services on one port: the older keeps it, the newer gets an Event.
package servicelb

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	nodeutil "k8s.io/kubernetes/pkg/util/node"
)

// PortsInUseAnnotation on a Node lists the ports of LoadBalancer Services
// that something else on that node listens on, as a JSON list of "TCP/80".
const PortsInUseAnnotation = "servicelb.hw.io/ports-in-use"

// handles reports whether hw gives the Service its addresses.
func handles(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil
}

// portKey names a port as the annotation does.
func portKey(p corev1.ServicePort) string {
	proto := p.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	return fmt.Sprintf("%s/%d", proto, p.Port)
}

func parsePortsInUse(node *corev1.Node) map[string]bool {
	var list []string
	_ = json.Unmarshal([]byte(node.Annotations[PortsInUseAnnotation]), &list)
	out := map[string]bool{}
	for _, p := range list {
		out[p] = true
	}
	return out
}

// nodeAddress is the address a node gets in ingress: its ExternalIP if it
// has one, else its InternalIP.
func nodeAddress(node *corev1.Node) string {
	var internal string
	for _, a := range node.Status.Addresses {
		switch a.Type {
		case corev1.NodeExternalIP:
			return a.Address
		case corev1.NodeInternalIP:
			if internal == "" {
				internal = a.Address
			}
		}
	}
	return internal
}

// Problem is why a Service is not answered somewhere.
type Problem struct {
	Reason, Message string
}

// Plan computes each handled Service's ingress addresses, and the problems
// to report, from all Services and Nodes. It is a pure function: the
// Controller applies its result.
func Plan(services []*corev1.Service, nodes []*corev1.Node) (map[string][]string, map[string][]Problem) {
	svcs := make([]*corev1.Service, 0, len(services))
	for _, s := range services {
		if handles(s) && s.DeletionTimestamp == nil {
			svcs = append(svcs, s)
		}
	}
	// Older first: the first Service on a port keeps it.
	sort.Slice(svcs, func(i, j int) bool {
		a, b := svcs[i], svcs[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	ready := make([]*corev1.Node, 0, len(nodes))
	for _, n := range nodes {
		if nodeutil.IsNodeReady(n) && nodeAddress(n) != "" {
			ready = append(ready, n)
		}
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].Name < ready[j].Name })

	ingress := map[string][]string{}
	problems := map[string][]Problem{}
	owner := map[string]string{} // port key → Service holding it
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		var clash []string
		for _, p := range svc.Spec.Ports {
			if other, taken := owner[portKey(p)]; taken {
				clash = append(clash, fmt.Sprintf("%s (LoadBalancer %s has it)", portKey(p), other))
			}
		}
		if len(clash) > 0 {
			problems[key] = append(problems[key], Problem{"PortInUse",
				fmt.Sprintf("port %s: no node answers for this Service", strings.Join(clash, ", "))})
			ingress[key] = nil
			continue
		}
		for _, p := range svc.Spec.Ports {
			owner[portKey(p)] = key
		}
		var addrs []string
		for _, n := range ready {
			inUse := parsePortsInUse(n)
			var taken []string
			for _, p := range svc.Spec.Ports {
				if inUse[portKey(p)] {
					taken = append(taken, portKey(p))
				}
			}
			if len(taken) > 0 {
				problems[key] = append(problems[key], Problem{"PortInUse",
					fmt.Sprintf("port %s is in use on node %s; that node is left out", strings.Join(taken, ", "), n.Name)})
				continue
			}
			addrs = append(addrs, nodeAddress(n))
		}
		ingress[key] = addrs
	}
	return ingress, problems
}
