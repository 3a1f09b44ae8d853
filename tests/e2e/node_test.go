//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestNode checks that `hw server` is a working single-node Kubernetes with
// nothing but what the binary carries: pods from an airgap image, Services,
// logs/exec/port-forward, static pods, and pods that survive hw restarts.
func TestNode(t *testing.T) {
	netw := newNetwork(t)
	node := newHWNode(t, netw.addNode(t, "node"))
	outside := netw.addNode(t, "client") // another host on the same network, without hw
	webappTar := filepath.Join(node.dataDir, "agent", "images", "webapp.tar")
	webapp := writeWebappImage(t, webappTar)
	outsideURL := serveOutside(t, outside, webapp)
	ctx := context.Background()

	p := node.server(t)
	node.waitNodeReady(t, p, 4*time.Minute)
	// Once the node is Ready, hw tells the user where the kubeconfig is.
	eventually(t, time.Minute, "hw prints where the kubeconfig is", func(ctx context.Context) error {
		log, _ := os.ReadFile(p.logPath)
		if !strings.Contains(string(log), `Cluster ready: run 'hw kubectl get nodes'`) || !strings.Contains(string(log), `kubeconfig="/etc/hw/hw.yaml"`) {
			return fmt.Errorf("no \"Cluster ready\" line naming /etc/hw/hw.yaml yet")
		}
		return nil
	})
	client := node.client(t)
	n, err := client.CoreV1().Nodes().Get(ctx, node.nodeName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels["node-role.kubernetes.io/control-plane"] != "true" {
		t.Errorf("server node labels %v: want node-role.kubernetes.io/control-plane=true", n.Labels)
	}

	// A Deployment of two replicas from the image hw imported offline.
	labels := map[string]string{"app": "webapp"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "webapp"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever,
					Args:  []string{"serve"},
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := runningPods(t, client, "default", "app=webapp", 2)
	podNames := []string{pods[0].Name, pods[1].Name}

	// Services: ClusterIP from inside a pod, NodePort from another host.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "webapp"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	svc, err = client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodePortURL := "http://" + hostPort(node.ip, svc.Spec.Ports[0].NodePort)
	reachesAll(t, outside, nodePortURL, podNames)
	reachesAll(t, node.testNode, "http://"+svc.Spec.ClusterIP+"/", podNames)
	eventually(t, time.Minute, "a pod reaches the Service by its ClusterIP (kubectl exec)", func(ctx context.Context) error {
		out, err := node.kubectl(t, "exec", pods[0].Name, "--", "/webapp", "get", "http://"+svc.Spec.ClusterIP+"/")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, "webapp-") {
			return fmt.Errorf("answer %q", out)
		}
		return nil
	})

	checkPodNetwork(t, node, client, pods[0].Name, "vxlan", outsideURL)

	// kubectl logs and port-forward go through the apiserver to the kubelet.
	out, err := node.kubectl(t, "logs", pods[0].Name)
	if err != nil || !strings.Contains(out, "webapp "+pods[0].Name+" listening") {
		t.Errorf("kubectl logs: %v: %q", err, out)
	}
	checkPortForward(t, node, pods[0].Name)

	// hostPort: a pod's port on the node's own address.
	hostPortPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hostport", Labels: map[string]string{"app": "hostport"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"},
			Ports: []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18081}},
		}}},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, hostPortPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runningPods(t, client, "default", "app=hostport", 1)
	reachesAll(t, outside, "http://"+hostPort(node.ip, 18081), []string{"hostport"})

	// A static pod: a manifest in the node's pod-manifests folder.
	static := `apiVersion: v1
kind: Pod
metadata:
  name: static-web
  namespace: default
  labels: {app: static-web}
spec:
  containers:
  - name: webapp
    image: ` + webappImage + `
    imagePullPolicy: Never
    args: [serve]
`
	if err := os.WriteFile(filepath.Join(node.dataDir, "agent", "pod-manifests", "static-web.yaml"), []byte(static), 0o644); err != nil {
		t.Fatal(err)
	}
	mirror := runningPods(t, client, "default", "app=static-web", 1)[0]
	if mirror.Name != "static-web-"+node.nodeName() || mirror.Annotations["kubernetes.io/config.mirror"] == "" {
		t.Errorf("static pod shows up as %s with annotations %v; want mirror pod static-web-%s", mirror.Name, mirror.Annotations, node.nodeName())
	}

	// Airgap images are pinned, so kubelet's image GC keeps them.
	if images, err := p.ctr(node, "images", "ls", "name=="+webappImage); err != nil || !strings.Contains(images, "io.cri-containerd.pinned=pinned") {
		t.Errorf("%s not pinned: %v\n%s", webappImage, err, images)
	}

	// Restarts leave running pods alone: SIGTERM, then kill -9.
	before := containerIDs(t, client, "app=webapp")
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		// An archive is imported again only when it changed: not before the
		// first restart, touched before the second.
		changed := how == "SIGKILL"
		if changed {
			later := time.Now().Add(time.Second)
			if err := os.Chtimes(webappTar, later, later); err != nil {
				t.Fatal(err)
			}
		}
		if how == "SIGTERM" {
			if err := p.stop(t, time.Minute); err != nil {
				t.Errorf("hw exited with %v after SIGTERM", err)
			}
		} else {
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
		}
		// With hw gone, the pods still answer: their containers belong to the shims.
		reachesAll(t, node.testNode, "http://"+hostPort(pods[0].Status.PodIP, 8080), []string{pods[0].Name})
		p = node.server(t)
		node.waitNodeReady(t, p, 4*time.Minute)
		client = node.client(t)
		log, _ := os.ReadFile(p.logPath)
		if imported := strings.Contains(string(log), `"Imported images" file="`+webappTar+`"`); imported != changed {
			t.Errorf("after %s: %s imported again = %v, want %v (archive changed: %v)", how, webappTar, imported, changed, changed)
		}
		runningPods(t, client, "default", "app=webapp", 2)
		if after := containerIDs(t, client, "app=webapp"); after != before {
			t.Fatalf("after %s: containers %s, want the same as before: %s", how, after, before)
		}
		reachesAll(t, outside, nodePortURL, podNames)
	}

	// Deleting the Deployment leaves no container, mount or veth behind.
	if err := client.AppsV1().Deployments("default").Delete(ctx, "webapp", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "webapp pods gone", func(ctx context.Context) error {
		list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=webapp"})
		if err != nil || len(list.Items) > 0 {
			return fmt.Errorf("%d pods left, %v", len(list.Items), err)
		}
		return nil
	})
	eventually(t, time.Minute, "no trace of the deleted pods", func(ctx context.Context) error {
		return noTraces(node, p, pods)
	})
}

// checkPodNetwork checks flannel's work on a node: the backend recorded on
// the Node, its device, and pod traffic to a host outside the cluster leaving
// with the node's address (masqueraded).
func checkPodNetwork(t *testing.T, node *hwNode, client kubernetes.Interface, pod, backend, outsideURL string) {
	t.Helper()
	n, err := client.CoreV1().Nodes().Get(context.Background(), node.nodeName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Annotations["flannel.alpha.coreos.com/backend-type"]; got != backend {
		t.Errorf("node annotation flannel.alpha.coreos.com/backend-type = %q, want %q", got, backend)
	}
	link, err := exec.Command("ip", "-n", node.netns, "-d", "link", "show", "flannel.1").CombinedOutput()
	if backend == "vxlan" && (err != nil || !strings.Contains(string(link), "vxlan id 1")) {
		t.Errorf("no VXLAN device flannel.1: %v %s", err, link)
	}
	if backend != "vxlan" && err == nil {
		t.Errorf("backend %s, yet a VXLAN device flannel.1 exists", backend)
	}
	eventually(t, time.Minute, "pod egress masqueraded to the node's address", func(ctx context.Context) error {
		out, err := node.kubectl(t, "exec", pod, "--", "/webapp", "get", outsideURL+"/ip")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if strings.TrimSpace(out) != node.ip {
			return fmt.Errorf("the outside host saw %q, want the node's %s", out, node.ip)
		}
		return nil
	})
}

// ctr runs `hw ctr ARGS` in the mount and network namespaces of the running
// hw, where its containerd socket is, and returns its standard output (on
// cgroup v1 ctr warns about deprecation on stderr).
func (p *hwProcess) ctr(node *hwNode, args ...string) (string, error) {
	pid := fmt.Sprint(p.cmd.Process.Pid)
	cmd := exec.Command("nsenter", append([]string{"-t", pid, "-m", "-n", "--", node.bin, "ctr"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hw ctr %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// containerIDs lists the containers of the matching pods with their restart
// counts, as one comparable string; every restart count must be 0.
func containerIDs(t *testing.T, client kubernetes.Interface, selector string) string {
	t.Helper()
	list, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range list.Items {
		for _, c := range p.Status.ContainerStatuses {
			if c.RestartCount != 0 || c.ContainerID == "" {
				t.Errorf("pod %s container %s: id %q restarts %d", p.Name, c.Name, c.ContainerID, c.RestartCount)
			}
			ids = append(ids, p.Name+"="+c.ContainerID)
		}
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// checkPortForward runs `kubectl port-forward` on the node and fetches
// through the forwarded port.
func checkPortForward(t *testing.T, node *hwNode, pod string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", node.netns, node.bin, "kubectl", "--kubeconfig", node.kubeconfig(),
		"port-forward", "pod/"+pod, "18090:8080")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	// Stop port-forward before waiting for it: it runs until killed.
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	eventually(t, time.Minute, "kubectl port-forward", func(ctx context.Context) error {
		body, err := httpGet(ctx, node.testNode, "http://127.0.0.1:18090/")
		if err != nil {
			return fmt.Errorf("%v (port-forward says %q)", err, out.String())
		}
		if body != pod {
			return fmt.Errorf("answer %q, want %q", body, pod)
		}
		return nil
	})
}

// noTraces checks hw's node holds nothing of the given pods: no container,
// no mount, and no more veths on the pod bridge than pods still on the pod network.
func noTraces(node *hwNode, p *hwProcess, gone []corev1.Pod) error {
	pid := fmt.Sprint(p.cmd.Process.Pid)
	for _, pod := range gone {
		out, err := p.ctr(node, "containers", "ls", "-q", `labels."io.kubernetes.pod.uid"==`+string(pod.UID))
		if err != nil {
			return err
		}
		if ids := strings.TrimSpace(string(out)); ids != "" {
			return fmt.Errorf("pod %s still has containers %s", pod.Name, ids)
		}
	}
	mounts, err := exec.Command("nsenter", "-t", pid, "-m", "--", "cat", "/proc/self/mountinfo").Output()
	if err != nil {
		return err
	}
	for _, pod := range gone {
		if strings.Contains(string(mounts), string(pod.UID)) {
			return fmt.Errorf("a mount of pod %s is left", pod.Name)
		}
	}
	cfg := node.restConfigNoTest()
	if cfg == nil {
		return fmt.Errorf("cannot load %s", node.kubeconfig())
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	list, err := client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err
	}
	onPodNetwork := 0
	for _, pod := range list.Items {
		if !pod.Spec.HostNetwork {
			onPodNetwork++
		}
	}
	veths, err := exec.Command("ip", "-n", node.netns, "-o", "link", "show", "master", "cni0", "type", "veth").Output()
	if err != nil {
		return err
	}
	if n := strings.Count(string(veths), "\n"); n != onPodNetwork {
		sandboxes, _ := p.ctr(node, "containers", "ls")
		netnsFiles, _ := exec.Command("nsenter", "-t", pid, "-m", "--", "ls", "/run/netns").Output()
		return fmt.Errorf("%d veths for %d pods on the pod network:\n%s\ncontainers:\n%s\n/run/netns: %s", n, onPodNetwork, veths, sandboxes, netnsFiles)
	}
	return nil
}
