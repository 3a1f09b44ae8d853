//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// kubectl runs `hw kubectl` as a user on the node would, with the admin kubeconfig.
func (h *hwNode) kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"netns", "exec", h.netns, h.bin, "kubectl", "--kubeconfig", h.kubeconfig()}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", full...).CombinedOutput()
	return string(out), err
}

// eventually polls check until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func(ctx context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = check(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s: %v", what, timeout, last)
	}
}

// waitNodeReady waits for this hw to say its node is Ready (after a restart
// the Node object may still be Ready from before), then for the Node object.
func (h *hwNode) waitNodeReady(t *testing.T, p *hwProcess, timeout time.Duration) {
	t.Helper()
	h.waitReady(t, p, timeout)
	eventually(t, timeout, "hw logs that node "+h.nodeName()+" is ready", func(ctx context.Context) error {
		select {
		case <-p.exited:
			t.Fatalf("hw exited: %v", p.err)
		default:
		}
		if log, _ := os.ReadFile(p.logPath); !strings.Contains(string(log), `"Node ready"`) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	h.waitNodeObjectReady(t, p, timeout)
}

// waitNodeObjectReady waits for the Node object to be Ready.
func (h *hwNode) waitNodeObjectReady(t *testing.T, p *hwProcess, timeout time.Duration) {
	t.Helper()
	client := h.client(t)
	eventually(t, timeout, "node "+h.nodeName()+" Ready", func(ctx context.Context) error {
		select {
		case <-p.exited:
			t.Fatalf("hw exited: %v", p.err)
		default:
		}
		node, err := client.CoreV1().Nodes().Get(ctx, h.nodeName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", node.Status.Conditions)
	})
}

// nodeName is the Kubernetes node name: the test host's name, passed as --node-name.
func (h *hwNode) nodeName() string { return h.name }

// runningPods waits until the pods matching selector are count and all Running and Ready.
func runningPods(t *testing.T, client kubernetes.Interface, ns, selector string, count int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, 3*time.Minute, fmt.Sprintf("%d pods %s Running", count, selector), func(ctx context.Context) error {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		if len(list.Items) != count {
			return fmt.Errorf("%d pods", len(list.Items))
		}
		for _, p := range list.Items {
			if p.Status.Phase != corev1.PodRunning || !podReady(p) {
				return fmt.Errorf("pod %s is %s: %v", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
			}
		}
		pods = list.Items
		return nil
	})
	return pods
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// httpGet fetches url from inside the given test host's network namespace.
func httpGet(ctx context.Context, from *testNode, url string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:       from.dial,
		DisableKeepAlives: true, // each request may reach another backend
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// reachesAll requests url from a host until every one of want has answered.
func reachesAll(t *testing.T, from *testNode, url string, want []string) {
	t.Helper()
	seen := map[string]bool{}
	eventually(t, 2*time.Minute, url+" reaches "+strings.Join(want, ", "), func(ctx context.Context) error {
		for i := 0; i < 20; i++ {
			body, err := httpGet(ctx, from, url)
			if err != nil {
				return err
			}
			seen[body] = true
		}
		for _, w := range want {
			if !seen[w] {
				return fmt.Errorf("answers so far: %v", seen)
			}
		}
		return nil
	})
}

func hostPort(ip string, port int32) string {
	return net.JoinHostPort(ip, fmt.Sprint(port))
}

// lockedBuffer collects a running command's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// kubectlLike runs another hw command (e.g. `hw token create`) on the node.
func (h *hwNode) kubectlLike(t *testing.T, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"netns", "exec", h.netns, h.bin}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", full...).Output()
	return strings.TrimSpace(string(out)), err
}
