//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// nodeEtcdClient is a client of node's embedded etcd, on its loopback, with
// the node's etcd client certificate.
func nodeEtcdClient(node *hwNode) (*clientv3.Client, error) {
	dir := filepath.Join(node.dataDir, "server", "tls", "etcd")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "server-ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{"https://127.0.0.1:2379"},
		DialTimeout: 5 * time.Second,
		TLS:         &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool},
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return node.dial(ctx, "tcp", addr)
		})},
	})
}

// etcdMembers lists the etcd members as node's etcd sees them: name, or
// "(unstarted)", and " (learner)" for a learner.
func etcdMembers(ctx context.Context, node *hwNode) ([]string, error) {
	cli, err := nodeEtcdClient(node)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range list.Members {
		name := m.Name
		if name == "" {
			name = "(unstarted)"
		}
		if m.IsLearner {
			name += " (learner)"
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// waitMembers waits until node's etcd has exactly the started voting members want.
func waitMembers(t *testing.T, node *hwNode, timeout time.Duration, want ...string) {
	t.Helper()
	slices.Sort(want)
	eventually(t, timeout, fmt.Sprintf("etcd members %v", want), func(ctx context.Context) error {
		got, err := etcdMembers(ctx, node)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("members %v", got)
		}
		return nil
	})
}

// apiserverAddresses are the addresses in the `kubernetes` Service's endpoints.
func apiserverAddresses(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	list, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			out = append(out, e.Addresses...)
		}
	}
	slices.Sort(out)
	return out, nil
}

func nodeReady(ctx context.Context, client kubernetes.Interface, name string) error {
	n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("node %s not Ready", name)
}

// waitExit waits for p to exit non-zero with want in its log.
func waitExit(t *testing.T, p *hwProcess, timeout time.Duration, want string) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("hw still running after %s; want it refused with %q", timeout, want)
	}
	log, _ := os.ReadFile(p.logPath)
	if p.err == nil || !strings.Contains(string(log), want) {
		t.Fatalf("hw exited with %v; want a non-zero exit saying %q; log ends:\n%s", p.err, want, tail(p.logPath, 8))
	}
	t.Logf("refused as expected: %s", tail(p.logPath, 1))
}

// TestHighAvailability builds three servers on embedded etcd and an agent,
// kills the first server, and checks that the cluster goes on: the API
// answers through the others, controllers and scheduler move, the agent
// fails over and keeps its pods. Then the first server rejoins, and a
// server whose Node is deleted leaves etcd for a fresh one to join.
func TestHighAvailability(t *testing.T) {
	netw := newNetwork(t)
	s1 := newHWNode(t, netw.addNode(t, "server1"))
	s2 := newHWNode(t, netw.addNode(t, "server2"))
	s3 := newHWNode(t, netw.addNode(t, "server3"))
	agent := newHWNode(t, netw.addNode(t, "agent"))
	webapp := buildWebapp(t)
	for _, n := range []*hwNode{s1, s2, s3, agent} {
		writeWebappImageFrom(t, webapp, filepath.Join(n.dataDir, "agent", "images", "webapp.tar"))
	}
	ctx := context.Background()

	p1 := s1.server(t)
	s1.waitNodeReady(t, p1, 4*time.Minute)
	serverToken := s1.serverToken(t)
	url1 := "https://" + hostPort(s1.ip, 6443)

	// A join token joins agents only: refused, and etcd is unchanged.
	joinToken, err := s1.kubectlLike(t, "token", "create", "--kubeconfig", s1.kubeconfig(), "--ttl", "1h")
	if err != nil {
		t.Fatalf("hw token create: %v: %s", err, joinToken)
	}
	intruder := newHWNode(t, netw.addNode(t, "intruder"))
	waitExit(t, intruder.server(t, "--server", url1, "--token", joinToken), 2*time.Minute, "joins agents only")
	waitMembers(t, s1, 30*time.Second, s1.name)

	// Two servers join at the same moment; both make it.
	p2 := s2.server(t, "--server", url1, "--token", serverToken)
	p3 := s3.server(t, "--server", url1, "--token", serverToken)
	s2.waitNodeReady(t, p2, 6*time.Minute)
	s3.waitNodeReady(t, p3, 6*time.Minute)
	waitMembers(t, s1, time.Minute, s1.name, s2.name, s3.name)
	client1 := s1.client(t)
	eventually(t, time.Minute, "the kubernetes Service lists three apiservers", func(ctx context.Context) error {
		got, err := apiserverAddresses(ctx, client1)
		if want := []string{s1.ip, s2.ip, s3.ip}; !slices.Equal(got, sortedCopy(want)) {
			return fmt.Errorf("addresses %v (%v), want %v", got, err, want)
		}
		return nil
	})

	// The agent joins through server 1 and learns the others.
	ap := agent.agent(t, url1, serverToken)
	agent.waitAgentReady(t, ap, 4*time.Minute)
	eventually(t, time.Minute, "the agent's load balancer knows three servers", func(ctx context.Context) error {
		data, err := os.ReadFile(filepath.Join(agent.dataDir, "agent", "servers.json"))
		if err != nil {
			return err
		}
		var servers []string
		if err := json.Unmarshal(data, &servers); err != nil || len(servers) != 3 {
			return fmt.Errorf("servers.json: %s", data)
		}
		return nil
	})
	// A node name held by another server, and a --server that is an agent,
	// are refused, and etcd's members stay as they are.
	impostor := newHWNode(t, netw.addNode(t, "impostor"))
	waitExit(t, impostor.server(t, "--server", url1, "--token", serverToken, "--node-name", s2.name), 2*time.Minute,
		"etcd: a member named "+s2.name+" already exists")
	astray := newHWNode(t, netw.addNode(t, "astray"))
	waitExit(t, astray.server(t, "--server", "https://"+hostPort(agent.ip, 6443), "--token", serverToken), 2*time.Minute,
		"it is an agent, not a server")
	waitMembers(t, s1, 30*time.Second, s1.name, s2.name, s3.name)

	podOn(t, client1, "survivor", agent.name, "serve")
	before := runningPods(t, client1, "default", "app=survivor", 1)[0]

	t.Cleanup(func() {
		if t.Failed() {
			for _, args := range [][]string{{"get", "pods", "-A", "-o", "wide"}, {"get", "events", "-A", "--sort-by=.lastTimestamp"}, {"-n", "kube-system", "get", "leases"}} {
				out, err := s2.kubectl(t, args...)
				t.Logf("kubectl %s on server 2 (%v):\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	// Server 1 dies.
	killed := time.Now()
	p1.kill()
	client2 := s2.client(t)
	eventually(t, time.Minute, "server 2's API answers", func(ctx context.Context) error {
		body, err := client2.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			return fmt.Errorf("readyz: %v %s", err, body)
		}
		return nil
	})
	t.Logf("server 2 answers %s after server 1's death", time.Since(killed).Round(time.Second))
	// On the agent: a pod the scheduler puts on server 1's node in the
	// seconds before its death is noticed (about 40 s) would wait for
	// eviction, as upstream's does; the scheduler's work is the same.
	labels := map[string]string{"app": "after-failover"}
	if _, err := client2.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "after-failover"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"kubernetes.io/hostname": agent.name},
					Containers:   []corev1.Container{{Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"}}},
				},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runningPods(t, client2, "default", "app=after-failover", 1)
	t.Logf("a new Deployment runs %s after server 1's death", time.Since(killed).Round(time.Second))
	// The metrics API is served by the servers still alive.
	eventually(t, 2*time.Minute, "node metrics through server 2 after server 1's death", func(ctx context.Context) error {
		body, err := client2.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes/" + agent.name).DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%v %s", err, body)
		}
		return nil
	})
	if wait := time.Until(killed.Add(70 * time.Second)); wait > 0 {
		time.Sleep(wait) // the test's own clock: what holds 70 s after the death
	}
	for _, name := range []string{agent.name, s2.name, s3.name} {
		eventually(t, 30*time.Second, "node "+name+" Ready after server 1's death", func(ctx context.Context) error {
			return nodeReady(ctx, client2, name)
		})
	}
	after, err := client2.CoreV1().Pods("default").Get(ctx, "survivor", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, a := before.Status.ContainerStatuses[0], after.Status.ContainerStatuses[0]; a.ContainerID != b.ContainerID || a.RestartCount != 0 || !podReady(*after) {
		t.Errorf("the agent's pod changed: container %s → %s, restarts %d, ready %v", b.ContainerID, a.ContainerID, a.RestartCount, podReady(*after))
	}
	if log, _ := os.ReadFile(ap.logPath); !strings.Contains(string(log), "Load balancer now uses another apiserver") {
		t.Errorf("the agent's log does not show its failover:\n%s", grepLines(ap.logPath, "[hw] ", 20))
	}

	// Server 1 comes back as the member it was.
	p1 = s1.server(t)
	s1.waitNodeReady(t, p1, 4*time.Minute)
	waitMembers(t, s2, time.Minute, s1.name, s2.name, s3.name)

	// Server 3's machine dies and its Node is deleted: its member goes, and
	// a fresh machine joins in its place.
	p3.kill()
	if err := client2.CoreV1().Nodes().Delete(ctx, s3.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, s2, 2*time.Minute, s1.name, s2.name)
	s4 := newHWNode(t, netw.addNode(t, "server4"))
	writeWebappImageFrom(t, webapp, filepath.Join(s4.dataDir, "agent", "images", "webapp.tar"))
	p4 := s4.server(t, "--server", "https://"+hostPort(s2.ip, 6443), "--token", serverToken)
	s4.waitNodeReady(t, p4, 6*time.Minute)
	waitMembers(t, s2, time.Minute, s1.name, s2.name, s4.name)

	// Restoring a snapshot on one server of several: stop them all, restore
	// on one, start it, and start the others with --server pointing at it;
	// they find they are no longer members, keep their old etcd data aside
	// and join the restored cluster afresh.
	out, err := s2.hwCommand(t, "etcd-snapshot", "save", "--data-dir", s2.dataDir, "--name", "before-restore")
	if err != nil {
		t.Fatalf("hw etcd-snapshot save: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(before-restore-server2-\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("save printed %q, want the snapshot's name", out)
	}
	if _, err := client2.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-snapshot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*hwProcess{p1, p4, p2} {
		if err := p.stop(t, 2*time.Minute); err != nil {
			t.Logf("stopped: %v", err)
		}
	}
	clusterReset(t, s2, "--server", url1, "--token", serverToken, "--cluster-reset-restore-path", m[1])
	url2 := "https://" + hostPort(s2.ip, 6443)
	p2 = s2.server(t, "--server", url1, "--token", serverToken)
	s2.waitNodeReady(t, p2, 4*time.Minute)
	p1 = s1.server(t, "--server", url2, "--token", serverToken)
	p4 = s4.server(t, "--server", url2, "--token", serverToken)
	s1.waitNodeReady(t, p1, 6*time.Minute)
	s4.waitNodeReady(t, p4, 6*time.Minute)
	waitMembers(t, s2, time.Minute, s1.name, s2.name, s4.name)
	for _, n := range []*hwNode{s1, s4} {
		if old, _ := filepath.Glob(filepath.Join(n.dataDir, "server", "db", "etcd-old-*")); len(old) != 1 {
			t.Errorf("%s kept %d old etcd data dirs aside, want 1", n.name, len(old))
		}
	}
	if _, err := client2.CoreV1().ConfigMaps("default").Get(ctx, "after-snapshot", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a ConfigMap made after the snapshot is there after the restore (%v)", err)
	}
	eventually(t, 2*time.Minute, "the agent Ready after the restore", func(ctx context.Context) error {
		return nodeReady(ctx, client2, agent.name)
	})
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// waitAgentReady waits for an agent to log that its node is Ready.
func (h *hwNode) waitAgentReady(t *testing.T, p *hwProcess, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "agent "+h.name+" says its node is Ready", func(ctx context.Context) error {
		select {
		case <-p.exited:
			t.Fatalf("agent %s exited: %v\n%s", h.name, p.err, tail(p.logPath, 20))
		default:
		}
		if log, _ := os.ReadFile(p.logPath); !strings.Contains(string(log), `"Node ready"`) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}
