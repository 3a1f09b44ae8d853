//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInstallKillallUninstall installs hw with install.sh on a test node
// (no service manager here: INSTALL_HW_INIT=none, the hw under test as the
// "downloaded" binary), runs the installed server on its default paths with
// a workload, then checks that hw-killall.sh stops everything and
// hw-uninstall.sh leaves nothing of hw on the node.
func TestInstallKillallUninstall(t *testing.T) {
	netw := newNetwork(t)
	outside := netw.addNode(t, "client")
	node := newHWNode(t, netw.addNode(t, "inst"))
	holder := node.ensureMachine(t)

	binDir := filepath.Join(node.root, "usr-local-bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(node.bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(binDir, "hw"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	installer, err := filepath.Abs("../../install.sh")
	if err != nil {
		t.Fatal(err)
	}
	vars := []string{"PATH=" + binDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"INSTALL_HW_SKIP_DOWNLOAD=true", "INSTALL_HW_BIN_DIR=" + binDir, "INSTALL_HW_INIT=none", "HW_NODE_NAME=" + node.name}
	out := runInMachine(t, holder, vars, "sh", installer)
	if !strings.Contains(out, "no service (INSTALL_HW_INIT=none)") {
		t.Fatalf("install.sh did not say how to start hw:\n%s", out)
	}
	// hw runs as the printed command runs it: with the environment file
	// (HW_NODE_NAME) and on its default data dir. It tells the service
	// manager (here: a socket of the test's) when it is ready.
	node.env = append(readEnvFile(t, filepath.Join(node.root, "etc-hw", "hw.env")), "NOTIFY_SOCKET="+filepath.Join(node.root, "notify.sock"))
	if !slices.Contains(node.env, "HW_NODE_NAME="+node.name) {
		t.Fatalf("the environment file holds %q, not HW_NODE_NAME", node.env)
	}
	node.bin = filepath.Join(binDir, "hw")
	writeWebappImage(t, filepath.Join(node.root, "var-lib-hw", "agent", "images", "webapp.tar"))
	notify := listenNotify(t, filepath.Join(node.root, "notify.sock"))
	p := node.start(t, "server", "--kubelet-arg", "cgroup-root=/"+node.cgroupRoot())
	select {
	case msg := <-notify:
		if !strings.HasPrefix(msg, "READY=1") {
			t.Fatalf("first notification %q, want READY=1", msg)
		}
	case <-p.exited:
		t.Fatalf("hw exited before it was ready: %v", p.err)
	case <-time.After(4 * time.Minute):
		t.Fatal("hw sent no READY=1 within 4 minutes")
	}
	// READY=1 means the node is Ready, not merely that hw runs.
	client := node.client(t)
	ctx := context.Background()
	n, err := client.CoreV1().Nodes().Get(ctx, node.name, metav1.GetOptions{})
	if err != nil || !nodeIsReady(n) {
		t.Fatalf("hw sent READY=1 but node %s is not Ready: %v", node.name, err)
	}

	// A pod with a Service: shims, containers, mounts, veths and rules to clean.
	pod, svc := runWebapp(t, client)
	reachesAll(t, outside, "http://"+hostPort(node.ip, svc.Spec.Ports[0].NodePort), []string{pod.Name})
	before := node.leftovers(t, holder)
	for _, want := range []string{"process ", "cgroup process ", "mount /run/hw/", "mount /var/lib/kubelet/", "mount /run/netns/cni-",
		"link cni0", "link flannel.1", "link veth", "iptables -A KUBE-", "iptables -A FLANNEL", "iptables -A HW-DNS", "address lo:hw-dns"} {
		if !slices.ContainsFunc(before, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Fatalf("before hw-killall.sh, nothing like %q on the node, so the test proves nothing:\n%s", want, strings.Join(before, "\n"))
		}
	}

	out = runInMachine(t, holder, vars, filepath.Join(binDir, "hw-killall.sh"))
	// hw-killall.sh returns once hw is gone; give the test's wait for the
	// process a moment to see it.
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("hw still runs after hw-killall.sh:\n%s", out)
	}
	if msg := receiveNotify(notify); msg != "STOPPING=1" {
		t.Errorf("after SIGTERM hw notified %q, want STOPPING=1", msg)
	}
	if left := node.leftovers(t, holder); len(left) > 0 {
		t.Errorf("hw-killall.sh left behind:\n%s\nits output:\n%s", strings.Join(left, "\n"), out)
	}
	if _, err := os.Stat(filepath.Join(node.root, "var-lib-hw", "server", "token")); err != nil {
		t.Errorf("hw-killall.sh removed the cluster's data: %v", err)
	}

	out = runInMachine(t, holder, vars, filepath.Join(binDir, "hw-uninstall.sh"))
	if !strings.Contains(out, "hw is uninstalled") {
		t.Errorf("hw-uninstall.sh did not finish:\n%s", out)
	}
	if left := node.leftovers(t, holder); len(left) > 0 {
		t.Errorf("after hw-uninstall.sh:\n%s", strings.Join(left, "\n"))
	}
	// The node's own copies of the host folders hw and its CNI plugins write
	// to, and the bin dir.
	for _, dir := range []string{"usr-local-bin", "etc-hw", "var-lib-hw", "run/hw", "var-lib-kubelet", "var-lib-cni", "var-log-pods", "var-log-containers"} {
		var files []string
		filepath.WalkDir(filepath.Join(node.root, dir), func(path string, d os.DirEntry, err error) error {
			if err == nil && path != filepath.Join(node.root, dir) {
				files = append(files, path)
			}
			return nil
		})
		if len(files) > 0 {
			t.Errorf("hw-uninstall.sh left in %s: %q", dir, files)
		}
	}
	if netns, _ := filepath.Glob(filepath.Join(node.root, "run", "netns", "cni-*")); len(netns) > 0 {
		t.Errorf("pod network namespaces left: %q", netns)
	}
}

// runInMachine runs a command in the test node's mount and network
// namespaces, as root on that machine would, with only the given environment.
func runInMachine(t *testing.T, holder string, env []string, args ...string) string {
	t.Helper()
	full := append([]string{"-t", holder, "-m", "-n", "--", "env", "-i"}, env...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append(full, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// readEnvFile reads install.sh's environment file: NAME='value' lines.
func readEnvFile(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, value, ok := strings.Cut(line, "=")
		if !ok || len(value) < 2 || value[0] != '\'' || value[len(value)-1] != '\'' {
			t.Fatalf("%s: line %q is not NAME='value'", path, line)
		}
		env = append(env, name+"="+value[1:len(value)-1])
	}
	return env
}

func nodeIsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// listenNotify stands in for systemd's notify socket: each datagram hw
// sends arrives on the channel.
func listenNotify(t *testing.T, path string) <-chan string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return ch
}

func receiveNotify(ch <-chan string) string {
	select {
	case msg := <-ch:
		return msg
	case <-time.After(5 * time.Second):
		return "(nothing)"
	}
}

// hwRulePattern matches kube-proxy's, flannel's and the CNI plugins' chains.
var hwRulePattern = regexp.MustCompile(`KUBE-|CNI-|FLANNEL|HW-DNS`)

// leftovers lists what of hw is on the node, one line per thing: processes
// (in the node's network namespace, or in its kubelet cgroups), mounts under
// hw's and kubelet's folders, pod network interfaces, firewall rules.
func (h *hwNode) leftovers(t *testing.T, holder string) []string {
	t.Helper()
	var left []string
	out, _ := exec.Command("ip", "netns", "pids", h.netns).Output()
	for _, pid := range strings.Fields(string(out)) {
		if pid == holder || pid == fmt.Sprint(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		left = append(left, fmt.Sprintf("process %s: %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
	}
	inCgroups := map[string]bool{}
	for _, m := range hostCgroupMountsNoTest() {
		filepath.WalkDir(filepath.Join(m.dir, h.cgroupRoot()), func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				procs, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
				for _, pid := range strings.Fields(string(procs)) {
					inCgroups[pid] = true
				}
			}
			return nil
		})
	}
	for pid := range inCgroups {
		left = append(left, "cgroup process "+pid)
	}

	mountinfo, err := os.ReadFile("/proc/" + holder + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		for _, under := range []string{"/run/hw/", "/var/lib/hw/", "/var/lib/kubelet/", "/run/netns/cni-"} {
			if strings.HasPrefix(f[4], under) {
				left = append(left, "mount "+f[4])
			}
		}
	}

	out, err = exec.Command("ip", "-n", h.netns, "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name == "cni0" || strings.HasPrefix(name, "flannel") || strings.HasPrefix(name, "veth") {
			left = append(left, "link "+name)
		}
	}

	out, err = exec.Command("ip", "-n", h.netns, "-o", "addr", "show", "dev", "lo").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "lo:hw-dns") {
			left = append(left, "address lo:hw-dns "+line)
		}
	}

	for _, tool := range []string{"iptables", "ip6tables"} {
		out, err := exec.Command("ip", "netns", "exec", h.netns, tool+"-save").Output()
		if err != nil {
			t.Fatalf("%s-save: %v", tool, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if hwRulePattern.MatchString(line) {
				left = append(left, tool+" "+line)
			}
		}
	}
	out, err = exec.Command("ip", "netns", "exec", h.netns, "ipset", "list", "-n").Output()
	if err != nil {
		t.Fatalf("ipset list: %v", err)
	}
	for _, set := range strings.Fields(string(out)) {
		if strings.Contains(set, "KUBE-") || strings.Contains(set, "kube-router-") {
			left = append(left, "ipset "+set)
		}
	}
	out, err = exec.Command("ip", "netns", "exec", h.netns, "nft", "list", "tables").Output()
	if err != nil {
		t.Fatalf("nft list tables: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "kube-proxy") || strings.Contains(line, "flannel") || strings.Contains(line, "hw-dns") {
			left = append(left, "nft "+line)
		}
	}
	slices.Sort(left)
	return left
}
