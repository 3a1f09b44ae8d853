//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// hwBinary is the hw under test, built by `make test-e2e`.
func hwBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("HW_BIN")
	if bin == "" {
		t.Fatal("HW_BIN is not set: run the e2e tests through `make test-e2e`, which builds bin/hw")
	}
	return bin
}

// hwProcess is one running `hw` in a test node's namespaces.
type hwProcess struct {
	node    *testNode
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error
}

// hwNode is a node's hw installation: its own data dir and private /etc/hw and /run/hw.
type hwNode struct {
	*testNode
	bin     string
	root    string // everything of this node lives below
	dataDir string
	runs    int
}

func newHWNode(t *testing.T, node *testNode) *hwNode {
	root := t.TempDir()
	return &hwNode{testNode: node, bin: hwBinary(t), root: root, dataDir: filepath.Join(root, "data")}
}

func (h *hwNode) kubeconfig() string { return filepath.Join(h.root, "etc-hw", "hw.yaml") }

// start runs `hw ARGS...` inside the node's network namespace, with the
// node's own folders bound over the host paths hw uses.
func (h *hwNode) start(t *testing.T, args ...string) *hwProcess {
	t.Helper()
	h.runs++
	logPath := filepath.Join(h.root, fmt.Sprintf("hw-%d.log", h.runs))
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// `ip netns exec` gives the command its own mount namespace (slave to
	// the host's), so these binds are seen by this node only.
	var prelude strings.Builder
	for _, dir := range []string{"/etc/hw", "/run/hw"} {
		private := filepath.Join(h.root, strings.ReplaceAll(strings.TrimPrefix(dir, "/"), "/", "-"))
		fmt.Fprintf(&prelude, "mkdir -p %s %s && mount --bind %s %s && ", dir, private, private, dir)
	}
	script := prelude.String() + `exec "$@"`
	cmdArgs := append([]string{"netns", "exec", h.netns, "sh", "-c", script, "sh", h.bin}, args...)
	cmd := exec.Command("ip", cmdArgs...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &hwProcess{node: h.testNode, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", logPath, tail(logPath, 60))
		}
		p.kill()
	})
	return p
}

// server starts `hw server` with this node's data dir and kubeconfig path.
func (h *hwNode) server(t *testing.T, extra ...string) *hwProcess {
	return h.start(t, append([]string{"server", "--data-dir", h.dataDir}, extra...)...)
}

func (p *hwProcess) kill() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// stop sends SIGTERM and waits for hw to exit; it returns how hw exited.
func (p *hwProcess) stop(t *testing.T, timeout time.Duration) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("hw did not exit within %s of SIGTERM", timeout)
		return nil
	}
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// restConfig loads the admin kubeconfig hw wrote and dials through the node's namespace.
func (h *hwNode) restConfig(t *testing.T) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", h.kubeconfig())
	if err != nil {
		t.Fatalf("admin kubeconfig: %v", err)
	}
	cfg.Dial = h.dial
	cfg.Timeout = 15 * time.Second
	return cfg
}

func (h *hwNode) client(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	c, err := kubernetes.NewForConfig(h.restConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitControlPlane waits until every control-plane component works: the
// apiserver is ready, the controller-manager has published the root CA and
// made the default service account, and the scheduler reports healthy.
func (h *hwNode) waitControlPlane(t *testing.T, p *hwProcess, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	h.waitReady(t, p, timeout)
	client := h.client(t)
	sched := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:     h.dial,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // its serving cert is made in memory
	}}
	checks := map[string]func(ctx context.Context) error{
		"controller-manager published kube-root-ca.crt": func(ctx context.Context) error {
			_, err := client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return err
		},
		"controller-manager made the default service account": func(ctx context.Context) error {
			_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			return err
		},
		"scheduler healthy": func(ctx context.Context) error {
			resp, err := sched.Get("https://127.0.0.1:10259/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthz: %s", resp.Status)
			}
			return nil
		},
	}
	for name, check := range checks {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := check(ctx)
			cancel()
			if err == nil {
				break
			}
			select {
			case <-p.exited:
				t.Fatalf("hw exited before %s: %v", name, p.err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("not within %s: %s: %v", timeout, name, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// waitReady polls /readyz through the admin kubeconfig until it says ok, hw
// exits, or the timeout passes.
func (h *hwNode) waitReady(t *testing.T, p *hwProcess, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last := "kubeconfig not written yet"
	for {
		if _, err := os.Stat(h.kubeconfig()); err == nil {
			body, err := h.client(t).Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			if err == nil && string(body) == "ok" {
				return
			}
			last = fmt.Sprintf("%v %s", err, body)
		}
		select {
		case <-p.exited:
			t.Fatalf("hw exited before it was ready: %v", p.err)
		case <-ctx.Done():
			t.Fatalf("apiserver not ready within %s: %s", timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
