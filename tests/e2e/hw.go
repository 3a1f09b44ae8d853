//go:build e2e

package e2e

import (
	"bufio"
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
	// env is added to hw's environment (e.g. NOTIFY_SOCKET).
	env []string
	// machine holds the node's mount namespace (see machine) between runs.
	machine *exec.Cmd
}

func newHWNode(t *testing.T, node *testNode) *hwNode {
	root := t.TempDir()
	h := &hwNode{testNode: node, bin: hwBinary(t), root: root, dataDir: filepath.Join(root, "data")}
	// Runs after hw is killed (cleanups run last-registered first).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("network of node %s at the end:\n%s", h.name, h.networkState())
		}
		if err := h.killPods(); err != nil {
			t.Errorf("cleaning up node %s: %v", h.name, err)
		}
	})
	return h
}

// networkState shows the node's links, routes and firewall, for failures.
func (h *hwNode) networkState() string {
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-n", h.netns, "-br", "link"},
		{"ip", "-n", h.netns, "-br", "addr"},
		{"ip", "-n", h.netns, "route"},
		{"ip", "netns", "exec", h.netns, "iptables-save"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		fmt.Fprintf(&b, "$ %s (%v)\n%s\n", strings.Join(args, " "), err, out)
	}
	return b.String()
}

// killPods ends what outlives hw by design: shims (in the node's network
// namespace) and containers (in the node's kubelet cgroup root), then
// removes the cgroups, so nothing of a test is left on the machine.
func (h *hwNode) killPods() error {
	out, _ := exec.Command("ip", "netns", "pids", h.netns).Output()
	for _, pid := range strings.Fields(string(out)) {
		// The test itself shows up: its dialing threads entered the namespace.
		if pid != fmt.Sprint(os.Getpid()) {
			exec.Command("kill", "-9", pid).Run()
		}
	}
	if h.machine != nil {
		h.machine.Wait()
	}
	var dirs []string
	for _, m := range hostCgroupMountsNoTest() {
		root := filepath.Join(m.dir, h.cgroupRoot())
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := 0
		for _, dir := range dirs {
			procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, pid := range strings.Fields(string(procs)) {
				left++
				exec.Command("kill", "-9", pid).Run()
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes left in cgroup %s", left, h.cgroupRoot())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Deepest first: a cgroup is removed once its children are.
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
	return nil
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
	holder := h.ensureMachine(t)
	cmdArgs := append([]string{"-t", holder, "-m", "-n", "--", h.bin}, args...)
	cmd := exec.Command("nsenter", cmdArgs...)
	cmd.Env = append(os.Environ(), h.env...)
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
			t.Logf("hw's own lines in %s:\n%s", logPath, grepLines(logPath, "[hw] ", 80))
			t.Logf("last lines of %s:\n%s", logPath, tail(logPath, 30))
		}
		p.kill()
	})
	return p
}

// ensureMachine starts, once per node, a process that holds the node's mount
// namespace for the whole test, as a machine keeps its mounts across
// restarts of hw: pods' network namespaces are bind mounts under /run/netns
// that must outlive hw. It returns the holder's PID for nsenter.
func (h *hwNode) ensureMachine(t *testing.T) string {
	t.Helper()
	if h.machine != nil {
		return fmt.Sprint(h.machine.Process.Pid)
	}
	script := h.prelude(t) + "echo ready\nexec sleep infinity\n"
	cmd := exec.Command("ip", "netns", "exec", h.netns, "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("setting up node %s's mounts: %v %q %s", h.name, err, line, stderr.String())
	}
	// killPods ends the holder with everything else in the namespace.
	h.machine = cmd
	return fmt.Sprint(cmd.Process.Pid)
}

// privateDirs are host paths each node gets its own copy of: kubelet's and
// CNI's fixed paths (a user's own CNI plugin goes in /etc/cni and /opt/cni),
// and hw's own config and default data dirs.
// /run is one too, kept across restarts of hw as a machine keeps it: shims and
// containerd's state live there.
var privateDirs = []string{"/run", "/etc/hw", "/var/lib/hw", "/etc/cni", "/opt/cni", "/var/lib/kubelet", "/var/lib/cni", "/var/log/pods", "/var/log/containers"}

// prelude is the shell that sets up the node's mount namespace. `ip netns
// exec` gives the command its own mount namespace (a slave of the host's), so
// these mounts are seen by this node only. It also mounts a fresh /sys, which
// hides the cgroup hierarchies: they are mounted again as the host has them,
// and each node's kubelet gets its own cgroup root so two kubelets never
// collect each other's pods.
func (h *hwNode) prelude(t *testing.T) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, dir := range privateDirs {
		private := filepath.Join(h.root, strings.ReplaceAll(strings.TrimPrefix(dir, "/"), "/", "-"))
		fmt.Fprintf(&b, "mkdir -p %s %s && mount --bind %s %s\n", dir, private, private, dir)
	}
	// The node's resolver is on the test network, never the host's.
	resolvConf := filepath.Join(h.root, "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver "+h.resolver+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "mount --bind %s /etc/resolv.conf\n", resolvConf)
	b.WriteString("mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup\n")
	for _, m := range hostCgroupMounts(t) {
		fmt.Fprintf(&b, "mkdir -p %s && mount -t %s -o %s %s %s\n", m.dir, m.fstype, m.opts, m.fstype, m.dir)
		fmt.Fprintf(&b, "mkdir -p %s/%s\n", m.dir, h.cgroupRoot())
	}
	return b.String()
}

// cgroupRoot is this node's kubelet cgroup root (--kubelet-arg=cgroup-root).
// It carries the network namespace's name, which is unique per test run, so
// runs never share a cgroup.
func (h *hwNode) cgroupRoot() string { return h.netns }

type cgroupMount struct{ dir, fstype, opts string }

// hostCgroupMounts reads the host's cgroup hierarchies from mountinfo.
func hostCgroupMounts(t *testing.T) []cgroupMount {
	out := hostCgroupMountsNoTest()
	if len(out) == 0 {
		t.Fatal("no cgroup hierarchies on this host")
	}
	return out
}

func hostCgroupMountsNoTest() []cgroupMount {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []cgroupMount
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 || (g[0] != "cgroup" && g[0] != "cgroup2") || !strings.HasPrefix(f[4], "/sys/fs/cgroup") {
			continue
		}
		opts := "rw"
		if g[0] == "cgroup" {
			for _, o := range strings.Split(g[2], ",") {
				if o != "rw" && o != "ro" {
					opts += "," + o
				}
			}
		}
		out = append(out, cgroupMount{dir: f[4], fstype: g[0], opts: opts})
	}
	return out
}

// server starts `hw server` with this node's data dir and kubeconfig path.
func (h *hwNode) server(t *testing.T, extra ...string) *hwProcess {
	args := []string{"server", "--data-dir", h.dataDir, "--node-name", h.name, "--kubelet-arg", "cgroup-root=/" + h.cgroupRoot()}
	return h.start(t, append(args, extra...)...)
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

// grepLines returns the last n lines of the file that start with prefix.
func grepLines(path, prefix string, n int) string {
	data, _ := os.ReadFile(path)
	var lines [][]byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(prefix)) {
			lines = append(lines, line)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
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
	cfg := h.restConfigNoTest()
	if cfg == nil {
		t.Fatalf("cannot load the admin kubeconfig %s", h.kubeconfig())
	}
	return cfg
}

func (h *hwNode) restConfigNoTest() *rest.Config {
	cfg, err := clientcmd.BuildConfigFromFlags("", h.kubeconfig())
	if err != nil {
		return nil
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

// agent starts `hw agent` joining server with token.
func (h *hwNode) agent(t *testing.T, serverURL, token string, extra ...string) *hwProcess {
	args := []string{"agent", "--data-dir", h.dataDir, "--node-name", h.name, "--kubelet-arg", "cgroup-root=/" + h.cgroupRoot(),
		"--server", serverURL, "--token", token}
	return h.start(t, append(args, extra...)...)
}

// serverToken is the server token a server wrote on first boot.
func (h *hwNode) serverToken(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(h.dataDir, "server", "token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
