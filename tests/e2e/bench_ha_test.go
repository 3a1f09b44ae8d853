//go:build e2e && bench

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// haTimes measures, on servers of their own: a server joining → its Node
// Ready (each joiner's Node then deleted, which removes its etcd member,
// before the next); and, with three servers, kill -9 of the server leading the
// controller-manager → another server holds its lease (the controllers and
// the scheduler move the same way).
func haTimes(t *testing.T, r *report, netw *network) {
	first := newHWNode(t, netw.addNode(t, "ha1"))
	p1 := first.server(t, "--etcd-disable-snapshots")
	first.waitNodeReady(t, p1, 4*time.Minute)
	client := first.client(t)
	token := first.serverToken(t)
	url := "https://" + hostPort(first.ip, 6443)

	var joins []float64
	for i := range benchRuns {
		joiner := newHWNode(t, netw.addNode(t, fmt.Sprintf("hajoin%d", i)))
		begin := time.Now()
		p := joiner.server(t, "--etcd-disable-snapshots", "--server", url, "--token", token)
		waitNodeReadyFast(t, client, joiner.name, p, begin)
		joins = append(joins, time.Since(begin).Seconds())
		// Removed while both run: two members without one have no quorum.
		if err := client.CoreV1().Nodes().Delete(context.Background(), joiner.name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitMembers(t, first, 2*time.Minute, first.name)
		p.kill()
		joiner.killPods()
	}
	r.add("High availability", "server join: process start → its node Ready", "s", "≤ 15 s", joins...)

	// Three servers; each round kills the controller-manager's leader and
	// brings it back.
	servers := map[string]*hwNode{first.name: first}
	procs := map[string]*hwProcess{first.name: p1}
	for i := 2; i <= 3; i++ {
		n := newHWNode(t, netw.addNode(t, fmt.Sprintf("ha%d", i)))
		procs[n.name] = n.server(t, "--etcd-disable-snapshots", "--server", url, "--token", token)
		servers[n.name] = n
	}
	for name, n := range servers {
		n.waitNodeReady(t, procs[name], 6*time.Minute)
	}
	var takeovers []float64
	for range benchRuns {
		leader := leaseHolder(t, client, "kube-controller-manager")
		var other *hwNode
		for name, n := range servers {
			if name != leader {
				other = n
			}
		}
		watch := other.client(t)
		begin := time.Now()
		procs[leader].kill()
		for {
			if h := leaseHolderNow(watch, "kube-controller-manager"); h != "" && h != leader {
				break
			}
			if time.Since(begin) > 2*time.Minute {
				t.Fatal("no other server took the controller-manager's lease within 2 minutes")
			}
			time.Sleep(100 * time.Millisecond)
		}
		takeovers = append(takeovers, time.Since(begin).Seconds())
		procs[leader] = servers[leader].server(t, "--etcd-disable-snapshots", "--server", "https://"+hostPort(other.ip, 6443), "--token", token)
		servers[leader].waitNodeReady(t, procs[leader], 4*time.Minute)
		client = other.client(t)
	}
	r.add("High availability", "kill -9 of the controllers' leader → another server leads (3 servers)", "s", "≈ 20 s", takeovers...)
}

// waitNodeReadyFast polls node name every 20 ms until Ready.
func waitNodeReadyFast(t *testing.T, client kubernetes.Interface, name string, p *hwProcess, begin time.Time) {
	t.Helper()
	for {
		select {
		case <-p.exited:
			t.Fatalf("%s exited: %v\n%s", name, p.err, tail(p.logPath, 20))
		default:
		}
		if n, err := client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{}); err == nil && nodeIsReady(n) {
			return
		}
		if time.Since(begin) > 4*time.Minute {
			t.Fatalf("%s not Ready within 4 minutes", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaseHolderNow(client kubernetes.Interface, lease string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l, err := client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func leaseHolder(t *testing.T, client kubernetes.Interface, lease string) string {
	t.Helper()
	var holder string
	eventually(t, time.Minute, "a holder of "+lease, func(ctx context.Context) error {
		if holder = leaseHolderNow(client, lease); holder == "" {
			return fmt.Errorf("none")
		}
		return nil
	})
	return holder
}
