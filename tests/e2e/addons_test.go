//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestAddOns checks hw's packaged add-ons as a user would, on a server and
// an agent whose only resolver is on the test network and which cannot reach
// any registry: cluster DNS (Services, headless Services, forwarding, the
// user's own additions, on both nodes), local-path volumes, LoadBalancer
// Services, resource metrics with an HPA, and --disable of each.
func TestAddOns(t *testing.T) {
	netw := newNetwork(t)
	netw.serveDNS(t, map[string]string{"outside.hw.test": "192.0.2.7"})
	server := newHWNode(t, netw.addNode(t, "server"))
	agent := newHWNode(t, netw.addNode(t, "agent"))
	outside := netw.addNode(t, "client")
	webapp := buildWebapp(t)
	for _, n := range []*hwNode{server, agent} {
		writeWebappImageFrom(t, webapp, filepath.Join(n.dataDir, "agent", "images", "webapp.tar"))
	}
	sp := server.server(t)
	server.waitNodeReady(t, sp, 4*time.Minute)
	nodeReadyAt := time.Now()
	client := server.client(t)
	token, err := os.ReadFile(filepath.Join(server.dataDir, "server", "token"))
	if err != nil {
		t.Fatal(err)
	}
	ap := agent.agent(t, "https://"+hostPort(server.ip, 6443), strings.TrimSpace(string(token)))
	eventually(t, 4*time.Minute, "agent says its node is Ready", func(ctx context.Context) error {
		select {
		case <-ap.exited:
			t.Fatalf("agent exited: %v\n%s", ap.err, tail(ap.logPath, 20))
		default:
		}
		if log, _ := os.ReadFile(ap.logPath); !strings.Contains(string(log), `"Node ready"`) {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	t.Run("add-ons run without pods", func(t *testing.T) {
		pods, err := client.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 0 {
			t.Errorf("kube-system has %d pods; hw's add-ons run in hw itself and need no image", len(pods.Items))
		}
	})
	t.Run("dns", func(t *testing.T) { testClusterDNS(t, server, agent, client) })
	t.Run("local-path", func(t *testing.T) { testLocalPath(t, server, client) })
	t.Run("servicelb", func(t *testing.T) { testServiceLB(t, server, agent, outside, client) })
	t.Run("metrics", func(t *testing.T) { testMetrics(t, server, client, nodeReadyAt) })
	t.Run("network-policy", func(t *testing.T) { testNetworkPolicies(t, server, agent, client) })
	t.Run("disable", func(t *testing.T) {
		if err := sp.stop(t, time.Minute); err != nil {
			t.Fatalf("stopping the server: %v", err)
		}
		sp = server.server(t, "--disable", "coredns,local-storage,servicelb,metrics-server", "--disable-network-policy")
		server.waitNodeReady(t, sp, 4*time.Minute)
		testDisabled(t, server, agent, client)
		// The rules the earlier start made are gone from the server's node.
		out, err := exec.Command("ip", "netns", "exec", server.netns, "iptables-save", "-t", "filter").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-save: %v: %s", err, out)
		}
		if strings.Contains(string(out), "KUBE-ROUTER") || strings.Contains(string(out), "KUBE-NWPLCY") {
			t.Errorf("with --disable-network-policy the policy chains are still on the server's node:\n%s", out)
		}
	})
}

// podOn runs a webapp pod with args on a node and waits until it runs.
func podOn(t *testing.T, client kubernetes.Interface, name, node string, args ...string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: args,
			}},
		},
	}
	eventually(t, time.Minute, "pod "+name+" created", func(ctx context.Context) error {
		_, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	runningPods(t, client, "default", "app="+name, 1)
}

// createDeployment runs one webapp replica with args, labelled app=name.
func createDeployment(t *testing.T, client kubernetes.Interface, name string, requests corev1.ResourceList, args ...string) {
	t.Helper()
	labels := map[string]string{"app": name}
	if _, err := client.AppsV1().Deployments("default").Create(context.Background(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: args,
					Resources: corev1.ResourceRequirements{Requests: requests},
				}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// lookup resolves name from inside a pod, as an application would.
func lookup(t *testing.T, server *hwNode, pod, name string) (string, error) {
	out, err := server.kubectl(t, "exec", pod, "--", "/webapp", "lookup", name)
	return strings.TrimSpace(out), err
}

func testClusterDNS(t *testing.T, server, agent *hwNode, client kubernetes.Interface) {
	ctx := context.Background()
	podOn(t, client, "dns-server", server.name, "serve")
	podOn(t, client, "dns-agent", agent.name, "serve")

	// A Service with a selector, and a headless one over two pods.
	labels := map[string]string{"app": "named"}
	for i := range 2 {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("named-%d", i), Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"},
			}}},
		}
		if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	named := runningPods(t, client, "default", "app=named", 2)
	var podIPs []string
	for _, p := range named {
		podIPs = append(podIPs, p.Status.PodIP)
	}
	slices.Sort(podIPs)
	svc, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "named"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "headless"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: labels, Ports: []corev1.ServicePort{{Port: 8080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, pod := range []string{"dns-server", "dns-agent"} {
		for _, c := range []struct{ name, want string }{
			{"kubernetes.default.svc.cluster.local", "10.43.0.1"},
			{"kubernetes.default", "10.43.0.1"},
			{"named", svc.Spec.ClusterIP},
			{"named.default.svc.cluster.local", svc.Spec.ClusterIP},
			{"headless.default.svc.cluster.local", strings.Join(podIPs, " ")},
			// Not the cluster's: forwarded to the node's resolver.
			{"outside.hw.test", "192.0.2.7"},
		} {
			eventually(t, time.Minute, fmt.Sprintf("%s resolves %s", pod, c.name), func(ctx context.Context) error {
				got, err := lookup(t, server, pod, c.name)
				if err != nil || got != c.want {
					return fmt.Errorf("got %q (%v), want %q", got, err, c.want)
				}
				return nil
			})
		}
	}
	if got, err := lookup(t, server, "dns-server", "nowhere.hw.test"); err == nil {
		t.Errorf("nowhere.hw.test resolved to %q; want an error (NXDOMAIN upstream)", got)
	}

	// The user's additions reload every node without a restart.
	if _, err := client.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns-custom"},
		Data:       map[string]string{"extra.override": "hosts {\n    10.9.8.7 printer.home.arpa\n    fallthrough\n}\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{"dns-server", "dns-agent"} {
		eventually(t, time.Minute, pod+" resolves a name from coredns-custom", func(ctx context.Context) error {
			got, err := lookup(t, server, pod, "printer.home.arpa")
			if err != nil || got != "10.9.8.7" {
				return fmt.Errorf("got %q (%v)", got, err)
			}
			return nil
		})
	}
}

func testLocalPath(t *testing.T, server *hwNode, client kubernetes.Interface) {
	ctx := context.Background()
	class, err := client.StorageV1().StorageClasses().Get(ctx, "local-path", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if class.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" || *class.VolumeBindingMode != "WaitForFirstConsumer" {
		t.Errorf("local-path class: %v, binding %s; want the default class, WaitForFirstConsumer", class.Annotations, *class.VolumeBindingMode)
	}
	// No storageClassName: the default class.
	if _, err := client.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claimPod := func(name string, args ...string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: args,
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
				}},
				Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
			},
		}
	}
	succeeded := func(name string) {
		eventually(t, 3*time.Minute, "pod "+name+" Succeeded", func(ctx context.Context) error {
			p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.Phase == corev1.PodFailed {
				t.Fatalf("pod %s failed: %v", name, p.Status.ContainerStatuses)
			}
			if p.Status.Phase != corev1.PodSucceeded {
				return fmt.Errorf("%s", p.Status.Phase)
			}
			return nil
		})
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, claimPod("writer", "write", "/data/note", "kept"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	succeeded("writer")
	pvc, err := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv, err := client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	terms := pv.Spec.NodeAffinity.Required.NodeSelectorTerms
	if len(terms) != 1 || terms[0].MatchExpressions[0].Values[0] != server.name {
		t.Errorf("volume %s node affinity %v; want node %s", pv.Name, terms, server.name)
	}
	dir := pv.Spec.HostPath.Path
	if !strings.HasPrefix(dir, filepath.Join(server.dataDir, "storage")+"/") {
		t.Errorf("volume directory %s is not under the node's data dir %s", dir, server.dataDir)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "note")); err != nil || string(data) != "kept" {
		t.Errorf("the volume's directory on the node holds %q (%v); want what the pod wrote", data, err)
	}
	if err := client.CoreV1().Pods("default").Delete(ctx, "writer", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, claimPod("reader", "cat", "/data/note"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	succeeded("reader")
	if out, err := server.kubectl(t, "logs", "reader"); err != nil || out != "kept" {
		t.Errorf("the second pod read %q (%v); want what the first wrote", out, err)
	}
	if err := client.CoreV1().Pods("default").Delete(ctx, "reader", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the volume and its directory removed with the claim", func(ctx context.Context) error {
		if _, err := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("volume %s still there (%v)", pv.Name, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			return fmt.Errorf("%s still there (%v)", dir, err)
		}
		return nil
	})
}

func testServiceLB(t *testing.T, server, agent *hwNode, outside *testNode, client kubernetes.Interface) {
	ctx := context.Background()
	labels := map[string]string{"app": "lb"}
	createDeployment(t, client, "lb", nil, "serve")
	pod := runningPods(t, client, "default", "app=lb", 1)[0]
	lbService := func(name string, port int32) {
		t.Helper()
		if _, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, Selector: labels,
				Ports: []corev1.ServicePort{{Port: port, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ingressOf := func(ctx context.Context, name string) ([]string, error) {
		svc, err := client.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		var ips []string
		for _, i := range svc.Status.LoadBalancer.Ingress {
			ips = append(ips, i.IP)
		}
		slices.Sort(ips)
		return ips, nil
	}
	waitIngress := func(name string, want []string) {
		t.Helper()
		slices.Sort(want)
		eventually(t, 2*time.Minute, "LoadBalancer "+name+" ingress "+strings.Join(want, ","), func(ctx context.Context) error {
			got, err := ingressOf(ctx, name)
			if err != nil || !slices.Equal(got, want) {
				return fmt.Errorf("ingress %v (%v)", got, err)
			}
			return nil
		})
	}
	waitEvent := func(name, substring string) {
		t.Helper()
		eventually(t, 2*time.Minute, "an Event on Service "+name+" saying "+substring, func(ctx context.Context) error {
			events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",involvedObject.kind=Service"})
			if err != nil {
				return err
			}
			var seen []string
			for _, e := range events.Items {
				if e.Reason == "PortInUse" && strings.Contains(e.Message, substring) {
					return nil
				}
				seen = append(seen, e.Reason+": "+e.Message)
			}
			return fmt.Errorf("events: %v", seen)
		})
	}

	lbService("web", 8081)
	waitIngress("web", []string{server.ip, agent.ip})
	for _, ip := range []string{server.ip, agent.ip} {
		reachesAll(t, outside, "http://"+hostPort(ip, 8081)+"/", []string{pod.Name})
	}
	// 6443 is the apiserver's on the server: only the agent answers.
	lbService("on-apiserver-port", 6443)
	waitIngress("on-apiserver-port", []string{agent.ip})
	waitEvent("on-apiserver-port", "in use on node "+server.name)
	reachesAll(t, outside, "http://"+hostPort(agent.ip, 6443)+"/", []string{pod.Name})
	// A second Service on a taken port: the first keeps it.
	lbService("web-again", 8081)
	waitEvent("web-again", "LoadBalancer default/web has it")
	if got, _ := ingressOf(ctx, "web-again"); len(got) != 0 {
		t.Errorf("web-again got ingress %v; want none while web holds the port", got)
	}
	if got, _ := ingressOf(ctx, "web"); len(got) != 2 {
		t.Errorf("web lost its ingress: %v", got)
	}
}

func testMetrics(t *testing.T, server *hwNode, client kubernetes.Interface, nodeReadyAt time.Time) {
	ctx := context.Background()
	var out string
	eventually(t, 2*time.Minute-time.Since(nodeReadyAt), "kubectl top nodes, within two minutes of node Ready", func(ctx context.Context) error {
		var err error
		out, err = server.kubectl(t, "top", "nodes")
		if err != nil || !strings.Contains(out, server.name) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	t.Logf("kubectl top nodes:\n%s", out)

	createDeployment(t, client, "burn", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}, "burn")
	runningPods(t, client, "default", "app=burn", 1)
	eventually(t, 2*time.Minute, "kubectl top pods shows the burning pod", func(ctx context.Context) error {
		out, err := server.kubectl(t, "top", "pods", "-l", "app=burn")
		if err != nil || !strings.Contains(out, "burn-") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if _, err := client.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "burn"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "burn"},
			MinReplicas:    ptr.To[int32](1),
			MaxReplicas:    3,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](50)},
				},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the HPA scales the CPU-burning Deployment up", func(ctx context.Context) error {
		d, err := client.AppsV1().Deployments("default").Get(ctx, "burn", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas < 2 {
			h, _ := client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "burn", metav1.GetOptions{})
			if h != nil {
				return fmt.Errorf("replicas %d; HPA status %+v", *d.Spec.Replicas, h.Status)
			}
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		return nil
	})
	// The burners would slow what follows.
	if err := client.AutoscalingV2().HorizontalPodAutoscalers("default").Delete(ctx, "burn", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.AppsV1().Deployments("default").Delete(ctx, "burn", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// testDisabled checks that a server restarted with every add-on disabled
// removed their objects, and that the nodes stopped answering DNS.
func testDisabled(t *testing.T, server, agent *hwNode, client kubernetes.Interface) {
	gone := []struct {
		what string
		get  func(ctx context.Context) error
	}{
		{"ConfigMap kube-system/coredns", func(ctx context.Context) error {
			_, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			return err
		}},
		{"Service kube-system/kube-dns", func(ctx context.Context) error {
			_, err := client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
			return err
		}},
		{"StorageClass local-path", func(ctx context.Context) error {
			_, err := client.StorageV1().StorageClasses().Get(ctx, "local-path", metav1.GetOptions{})
			return err
		}},
		{"APIService v1beta1.metrics.k8s.io", func(ctx context.Context) error {
			_, err := server.kubectl(t, "get", "apiservice", "v1beta1.metrics.k8s.io")
			if err != nil {
				return apierrors.NewNotFound(corev1.Resource("apiservice"), "v1beta1.metrics.k8s.io")
			}
			return nil
		}},
	}
	for _, g := range gone {
		eventually(t, time.Minute, g.what+" removed", func(ctx context.Context) error {
			if err := g.get(ctx); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
	}
	for _, n := range []*hwNode{server, agent} {
		eventually(t, time.Minute, "node "+n.name+" no longer holds the cluster DNS address", func(ctx context.Context) error {
			out, err := exec.Command("ip", "-n", n.netns, "-o", "addr", "show").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if strings.Contains(string(out), "10.43.0.10") {
				return fmt.Errorf("still: %s", out)
			}
			return nil
		})
	}
	if _, err := lookup(t, server, "dns-server", "kubernetes.default"); err == nil {
		t.Error("a pod still resolves cluster names with coredns disabled")
	}
	if out, err := server.kubectl(t, "top", "nodes"); err == nil {
		t.Errorf("kubectl top nodes works with metrics-server disabled:\n%s", out)
	}
}
