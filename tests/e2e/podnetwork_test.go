//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// TestPodNetworkOptions runs hw server with the other pod network choices a
// user has: host-gw with kube-proxy in nftables mode (and containerd's native
// snapshotter, hw's fallback where the kernel has no overlayfs), WireGuard,
// and no pod network at all (the user brings a CNI plugin).
func TestPodNetworkOptions(t *testing.T) {
	netw := newNetwork(t)
	outside := netw.addNode(t, "client")
	webapp := buildWebapp(t)

	t.Run("host-gw, nftables, native snapshotter", func(t *testing.T) {
		node := newHWNode(t, netw.addNode(t, "hostgw"))
		// Airgap archives may be compressed: zstd here, gzip below.
		writeWebappImageFrom(t, webapp, filepath.Join(node.dataDir, "agent", "images", "webapp.tar.zst"))
		outsideURL := serveOutside(t, outside, webapp)
		p := node.server(t, "--flannel-backend", "host-gw", "--kube-proxy-arg", "proxy-mode=nftables", "--snapshotter", "native")
		node.waitNodeReady(t, p, 4*time.Minute)
		client := node.client(t)
		pod, svc := runWebapp(t, client)
		reachesAll(t, outside, "http://"+hostPort(node.ip, svc.Spec.Ports[0].NodePort), []string{pod.Name})
		eventually(t, time.Minute, "the pod reaches its Service's ClusterIP", func(ctx context.Context) error {
			out, err := node.kubectl(t, "exec", pod.Name, "--", "/webapp", "get", "http://"+svc.Spec.ClusterIP+"/")
			if err != nil || strings.TrimSpace(out) != pod.Name {
				return fmt.Errorf("%v: %q", err, out)
			}
			return nil
		})
		// The Service is kube-proxy's work in nftables, not iptables.
		if out, err := exec.Command("ip", "netns", "exec", node.netns, "nft", "list", "table", "ip", "kube-proxy").CombinedOutput(); err != nil ||
			!strings.Contains(string(out), svc.Spec.ClusterIP) {
			t.Errorf("no nftables table ip kube-proxy with the Service's ClusterIP %s: %v\n%s", svc.Spec.ClusterIP, err, out)
		}
		checkPodNetwork(t, node, client, pod.Name, "host-gw", outsideURL)
		// The pod's filesystem came from the native snapshotter.
		if snaps, err := p.ctr(node, "snapshots", "--snapshotter", "native", "ls"); err != nil || strings.Count(snaps, "\n") < 2 {
			t.Errorf("no native snapshots: %v\n%s", err, snaps)
		}
		if err := p.stop(t, time.Minute); err != nil {
			t.Errorf("hw exited with %v after SIGTERM", err)
		}
	})

	t.Run("wireguard-native", func(t *testing.T) {
		node := newHWNode(t, netw.addNode(t, "wg"))
		p := node.server(t, "--flannel-backend", "wireguard-native")
		if err := exec.Command("ip", "-n", node.netns, "link", "add", "wg-probe", "type", "wireguard").Run(); err != nil {
			// This kernel has no WireGuard: hw must say so and stop, not hang.
			t.Logf("kernel has no WireGuard (%v): checking that hw refuses clearly", err)
			select {
			case <-p.exited:
			case <-time.After(3 * time.Minute):
				t.Fatal("hw still running 3 minutes after asking for WireGuard on a kernel without it")
			}
			log, _ := os.ReadFile(p.logPath)
			if p.err == nil || !strings.Contains(string(log), "needs WireGuard in the kernel") || !strings.Contains(string(log), "--flannel-backend vxlan") {
				t.Errorf("hw exited with %v; want a non-zero exit naming the missing WireGuard and the fix; log ends:\n%s", p.err, tail(p.logPath, 10))
			}
			return
		}
		node.waitNodeReady(t, p, 4*time.Minute)
		n, err := node.client(t).CoreV1().Nodes().Get(context.Background(), node.nodeName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Annotations["flannel.alpha.coreos.com/backend-type"] != "wireguard" {
			t.Errorf("backend-type annotation %q, want wireguard", n.Annotations["flannel.alpha.coreos.com/backend-type"])
		}
		if out, err := exec.Command("ip", "-n", node.netns, "link", "show", "flannel-wg").CombinedOutput(); err != nil {
			t.Errorf("no flannel-wg device: %v %s", err, out)
		}
	})

	t.Run("none: bring your own CNI", func(t *testing.T) {
		node := newHWNode(t, netw.addNode(t, "nocni"))
		writeWebappImageFrom(t, webapp, filepath.Join(node.dataDir, "agent", "images", "webapp.tar.gz"))
		p := node.server(t, "--flannel-backend", "none")
		node.waitReady(t, p, 4*time.Minute)
		client := node.client(t)
		eventually(t, 2*time.Minute, "node registered, NotReady for want of a CNI plugin", func(ctx context.Context) error {
			n, err := client.CoreV1().Nodes().Get(ctx, node.nodeName(), metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					if c.Status == corev1.ConditionTrue {
						t.Fatalf("node Ready without any pod network")
					}
					if strings.Contains(c.Message, "cni") || strings.Contains(c.Message, "network") {
						return nil
					}
					return fmt.Errorf("Ready condition says %q", c.Message)
				}
			}
			return fmt.Errorf("no Ready condition yet")
		})
		eventually(t, time.Minute, "hw tells the user to install a CNI plugin", func(ctx context.Context) error {
			if log, _ := os.ReadFile(p.logPath); !strings.Contains(string(log), "install a CNI plugin") {
				return fmt.Errorf("not in the log yet")
			}
			return nil
		})
		if err := exec.Command("ip", "-n", node.netns, "link", "show", "flannel.1").Run(); err == nil {
			t.Error("flannel.1 exists with --flannel-backend none")
		}
		if entries, _ := os.ReadDir(filepath.Join(node.dataDir, "agent", "etc", "cni", "net.d")); len(entries) > 0 {
			t.Errorf("hw wrote a CNI config with --flannel-backend none: %v", entries)
		}
		// The user's CNI: a config in /etc/cni/net.d using the bridge plugin.
		conf := `{"cniVersion": "1.0.0", "name": "mine", "plugins": [{"type": "bridge", "bridge": "mybr0", "isGateway": true, "ipMasq": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}`
		dir := filepath.Join(node.root, "etc-cni", "net.d")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "10-mine.conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		node.waitNodeObjectReady(t, p, 2*time.Minute)
		pod, _ := runWebapp(t, client)
		if !strings.HasPrefix(pod.Status.PodIP, "10.99.0.") {
			t.Errorf("pod IP %s is not from the user's CNI range 10.99.0.0/24", pod.Status.PodIP)
		}
	})
}

// runWebapp starts one webapp pod and a NodePort Service for it.
func runWebapp(t *testing.T, client kubernetes.Interface) (corev1.Pod, *corev1.Service) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "webapp"}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "webapp", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"},
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	}
	// A fresh cluster refuses pods until the controller-manager has made the
	// namespace's default service account.
	eventually(t, time.Minute, "webapp pod created", func(ctx context.Context) error {
		_, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		return err
	})
	svc, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "webapp"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return runningPods(t, client, "default", "app=webapp", 1)[0], svc
}
