//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestAgents builds a three-node cluster: a server and two agents that join
// it over the apiserver's port, one with the server's token and one with a
// token from `hw token create`. Pods on different nodes reach each other
// over flannel's VXLAN, and a NodePort on an agent reaches every pod.
// Agents with a wrong token or a token for another CA are refused.
func TestAgents(t *testing.T) {
	netw := newNetwork(t)
	server := newHWNode(t, netw.addNode(t, "server"))
	agents := []*hwNode{newHWNode(t, netw.addNode(t, "agent1")), newHWNode(t, netw.addNode(t, "agent2"))}
	outside := netw.addNode(t, "client")
	webapp := buildWebapp(t)
	for _, n := range append([]*hwNode{server}, agents...) {
		writeWebappImageFrom(t, webapp, filepath.Join(n.dataDir, "agent", "images", "webapp.tar"))
	}
	ctx := context.Background()

	sp := server.server(t)
	server.waitNodeReady(t, sp, 4*time.Minute)
	client := server.client(t)
	serverToken := server.serverToken(t)
	serverURL := "https://" + hostPort(server.ip, 6443)

	// Refusals first: nothing may be registered for them.
	caHash, secret, _ := strings.Cut(serverToken, "::")
	wrongSecret := caHash + "::server:not-the-secret"
	wrongCA := "K10" + strings.Repeat("0", 64) + "::" + secret
	for i, tc := range []struct{ name, token, want string }{
		{"wrong token", wrongSecret, "refused the token"},
		{"wrong CA hash", wrongCA, "refusing to join"},
	} {
		intruder := newHWNode(t, netw.addNode(t, fmt.Sprintf("intruder%d", i)))
		p := intruder.agent(t, serverURL, tc.token)
		select {
		case <-p.exited:
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s: agent still running after 2 minutes", tc.name)
		}
		log, _ := os.ReadFile(p.logPath)
		t.Logf("%s: agent exited with %v: %s", tc.name, p.err, tail(p.logPath, 1))
		if p.err == nil || !strings.Contains(string(log), tc.want) {
			t.Errorf("%s: agent exited with %v; want a non-zero exit saying %q; log ends:\n%s", tc.name, p.err, tc.want, tail(p.logPath, 5))
		}
		if _, err := client.CoreV1().Nodes().Get(ctx, intruder.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: node %s registered (%v)", tc.name, intruder.name, err)
		}
	}

	// An unreachable server is retried, and named in the log.
	stray := newHWNode(t, netw.addNode(t, "stray"))
	deadURL := "https://" + hostPort(netw.unusedIP(), 6443)
	sp2 := stray.agent(t, deadURL, serverToken)
	eventually(t, time.Minute, "agent names the unreachable server", func(ctx context.Context) error {
		if log, _ := os.ReadFile(sp2.logPath); !strings.Contains(string(log), `"Server not reachable yet; retrying" server="`+deadURL+`"`) {
			return fmt.Errorf("not in the log yet")
		}
		return nil
	})
	sp2.kill()

	// An expired join token is refused like a wrong one.
	expired, err := server.kubectlLike(t, "token", "create", "--kubeconfig", server.kubeconfig(), "--ttl", "1s")
	if err != nil {
		t.Fatalf("hw token create: %v: %s", err, expired)
	}
	eventually(t, time.Minute, "the 1s token expired", func(ctx context.Context) error {
		if code := server.statusWithToken(t, expired[strings.Index(expired, "::")+2:]); code != 401 {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
	late := newHWNode(t, netw.addNode(t, "late"))
	lp := late.agent(t, serverURL, expired)
	select {
	case <-lp.exited:
	case <-time.After(2 * time.Minute):
		t.Fatal("agent with an expired token still running after 2 minutes")
	}
	if log, _ := os.ReadFile(lp.logPath); lp.err == nil || !strings.Contains(string(log), "refused the token") {
		t.Errorf("agent with an expired token exited with %v; log ends:\n%s", lp.err, tail(lp.logPath, 5))
	}

	joinToken, err := server.kubectlLike(t, "token", "create", "--kubeconfig", server.kubeconfig(), "--ttl", "1h")
	if err != nil {
		t.Fatalf("hw token create: %v: %s", err, joinToken)
	}
	ap := []*hwProcess{agents[0].agent(t, serverURL, serverToken), agents[1].agent(t, serverURL, joinToken)}
	for i, a := range agents {
		a.waitAgentReady(t, ap[i], 4*time.Minute)
	}
	for _, name := range []string{server.name, agents[0].name, agents[1].name} {
		eventually(t, 2*time.Minute, "node "+name+" Ready", func(ctx context.Context) error {
			return nodeReady(ctx, client, name)
		})
	}

	// A second machine cannot take a node name that is held.
	impostor := newHWNode(t, netw.addNode(t, "impostor"))
	ip := impostor.agent(t, serverURL, serverToken, "--node-name", agents[1].name)
	select {
	case <-ip.exited:
	case <-time.After(3 * time.Minute):
		t.Fatal("agent with a taken node name still running after 3 minutes")
	}
	if log, _ := os.ReadFile(ip.logPath); ip.err == nil || !strings.Contains(string(log), "node name "+agents[1].name+" is held by another machine") {
		t.Errorf("agent with a taken node name exited with %v; log ends:\n%s", ip.err, tail(ip.logPath, 5))
	}
	if n, err := client.CoreV1().Nodes().Get(ctx, agents[1].name, metav1.GetOptions{}); err != nil || n.Status.Addresses[0].Address != agents[1].ip {
		t.Errorf("node %s after the impostor: %v %v", agents[1].name, err, n.Status.Addresses)
	}

	// Six replicas spread over the three nodes.
	labels := map[string]string{"app": "spread"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "spread"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](6),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"},
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
					}},
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					}},
				},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := runningPods(t, client, "default", "app=spread", 6)
	perNode := map[string]int{}
	var names []string
	for _, p := range pods {
		perNode[p.Spec.NodeName]++
		names = append(names, p.Name)
	}
	t.Logf("pods per node: %v", perNode)
	for _, n := range []string{server.name, agents[0].name, agents[1].name} {
		if perNode[n] != 2 {
			t.Errorf("pods per node %v: want 2 on each of the three nodes", perNode)
			break
		}
	}
	// Every pod reaches every other pod by its IP, across nodes.
	for _, from := range pods {
		for _, to := range pods {
			if from.Name == to.Name {
				continue
			}
			eventually(t, time.Minute, from.Name+" on "+from.Spec.NodeName+" reaches "+to.Name+" on "+to.Spec.NodeName, func(ctx context.Context) error {
				out, err := server.kubectl(t, "exec", from.Name, "--", "/webapp", "get", "http://"+hostPort(to.Status.PodIP, 8080)+"/")
				if err != nil || strings.TrimSpace(out) != to.Name {
					return fmt.Errorf("%v: %q", err, out)
				}
				return nil
			})
		}
	}
	// A NodePort on an agent reaches the pods on every node.
	svc, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "spread"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: labels,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reachesAll(t, outside, "http://"+hostPort(agents[1].ip, svc.Spec.Ports[0].NodePort), names)
	// The ClusterIP from every node reaches the pods on every node.
	for _, n := range []*hwNode{server, agents[0], agents[1]} {
		reachesAll(t, n.testNode, "http://"+svc.Spec.ClusterIP+"/", names)
	}
	before := containerIDs(t, client, "app=spread")

	// Edge autonomy: with the server stopped for a minute, the agents' pods
	// keep answering; afterwards every node is Ready again, nothing restarted.
	if err := sp.stop(t, time.Minute); err != nil {
		t.Errorf("server exited with %v after SIGTERM", err)
	}
	var onAgents []corev1.Pod
	for _, p := range pods {
		if p.Spec.NodeName != server.name {
			onAgents = append(onAgents, p)
		}
	}
	for end := time.Now().Add(time.Minute); time.Now().Before(end); {
		for _, p := range onAgents {
			for _, a := range agents {
				if a.name != p.Spec.NodeName {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				body, err := httpGet(ctx, a.testNode, "http://"+hostPort(p.Status.PodIP, 8080)+"/")
				cancel()
				if err != nil || body != p.Name {
					t.Fatalf("with the server down, pod %s on %s does not answer: %v %q", p.Name, a.name, err, body)
				}
			}
		}
		for i, a := range agents {
			select {
			case <-ap[i].exited:
				t.Fatalf("agent %s exited while the server was down: %v\n%s", a.name, ap[i].err, tail(ap[i].logPath, 20))
			default:
			}
		}
	}
	sp = server.server(t)
	server.waitNodeReady(t, sp, 4*time.Minute)
	client = server.client(t)
	for _, name := range []string{agents[0].name, agents[1].name} {
		waitNodeReadyAfter(t, client, name, time.Now())
	}
	if after := containerIDs(t, client, "app=spread"); after != before {
		t.Errorf("after the server's absence: containers %s, want %s", after, before)
	}

	// A restarted agent comes back with its saved identity and its pods.
	if err := ap[0].stop(t, time.Minute); err != nil {
		t.Errorf("agent exited with %v after SIGTERM", err)
	}
	restarted := agents[0].agent(t, serverURL, serverToken)
	eventually(t, 4*time.Minute, "restarted agent says its node is Ready", func(ctx context.Context) error {
		log, _ := os.ReadFile(restarted.logPath)
		if !strings.Contains(string(log), `"Node ready"`) {
			return fmt.Errorf("not yet")
		}
		if !strings.Contains(string(log), "Using this agent's saved identity") {
			t.Fatalf("restarted agent joined anew instead of using its saved identity")
		}
		return nil
	})
	waitNodeReadyAfter(t, client, agents[0].name, time.Now())
	if after := containerIDs(t, client, "app=spread"); after != before {
		t.Errorf("after the agent's restart: containers %s, want %s", after, before)
	}
	reachesAll(t, outside, "http://"+hostPort(agents[0].ip, svc.Spec.Ports[0].NodePort), names)

	// A bare secret, without the CA hash, joins too, with a warning.
	bare := strings.TrimPrefix(secret, "server:")
	bp := late.agent(t, serverURL, bare)
	eventually(t, 4*time.Minute, "agent with a bare secret says its node is Ready", func(ctx context.Context) error {
		select {
		case <-bp.exited:
			t.Fatalf("agent with a bare secret exited: %v\n%s", bp.err, tail(bp.logPath, 10))
		default:
		}
		if log, _ := os.ReadFile(bp.logPath); !strings.Contains(string(log), `"Node ready"`) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if log, _ := os.ReadFile(bp.logPath); !strings.Contains(string(log), "the token has no CA hash, so the server's identity is not checked") {
		t.Errorf("no warning about the missing CA hash; log ends:\n%s", tail(bp.logPath, 10))
	}
}

// waitNodeReadyAfter waits until the node is Ready and its kubelet has
// renewed its node lease since the given time: after an outage or a restart
// the old Ready status may linger.
func waitNodeReadyAfter(t *testing.T, client kubernetes.Interface, name string, since time.Time) {
	t.Helper()
	eventually(t, 3*time.Minute, "node "+name+" Ready again", func(ctx context.Context) error {
		lease, err := client.CoordinationV1().Leases("kube-node-lease").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lease.Spec.RenewTime == nil || lease.Spec.RenewTime.Time.Before(since) {
			return fmt.Errorf("node lease not renewed since %s", since.Format(time.RFC3339))
		}
		return nodeReady(ctx, client, name)
	})
}
