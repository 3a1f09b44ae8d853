//go:build e2e

package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hw-k8s/hw/pkg/pki"
)

// externalEtcd runs upstream etcd, built from source, on the hub of the test
// network, with TLS and client certificates. It returns its client URL and
// the CA, client certificate and key files.
func externalEtcd(t *testing.T, netw *network) (endpoint, ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "etcd")
	build := exec.Command("go", "build", "-o", bin, "./testdata/etcd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building etcd: %v\n%s", err, out)
	}
	tlsDir := filepath.Join(dir, "tls")
	authority, err := pki.EnsureCA(tlsDir, "ca", "external-etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := pki.EnsureLeaf(tlsDir, authority, pki.LeafSpec{Name: "server", CommonName: "external-etcd", Usage: pki.ServerAuth,
		IPs: []net.IP{net.ParseIP(netw.resolverIP())}}, now); err != nil {
		t.Fatal(err)
	}
	client, err := pki.EnsureLeaf(tlsDir, authority, pki.LeafSpec{Name: "client", CommonName: "hw", Usage: pki.ClientAuth}, now)
	if err != nil {
		t.Fatal(err)
	}
	endpoint = "https://" + net.JoinHostPort(netw.resolverIP(), "2379")
	logPath := filepath.Join(dir, "etcd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", netw.hub, bin,
		"--name", "external", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "external=http://127.0.0.1:2380",
		"--cert-file", filepath.Join(tlsDir, "server.crt"), "--key-file", filepath.Join(tlsDir, "server.key"),
		"--trusted-ca-file", authority.CertFile, "--client-cert-auth")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			t.Logf("external etcd's log ends:\n%s", tail(logPath, 20))
		}
	})
	return endpoint, authority.CertFile, client.CertFile, client.KeyFile
}

// TestExternalDatastore runs a server against an etcd cluster it does not
// own (--datastore-endpoint): the cluster works, its objects are in that
// etcd, and the server runs no etcd of its own. An agent started at the same
// moment as the server joins it. Before all that, `hw check-config` passes.
func TestExternalDatastore(t *testing.T) {
	netw := newNetwork(t)
	server := newHWNode(t, netw.addNode(t, "server"))
	endpoint, ca, cert, key := externalEtcd(t, netw)
	webapp := buildWebapp(t)

	// `hw check-config` on the fresh node passes and names each check.
	cc := server.start(t, "check-config", "--data-dir", server.dataDir)
	select {
	case <-cc.exited:
	case <-time.After(time.Minute):
		t.Fatal("hw check-config still running after a minute")
	}
	out, _ := os.ReadFile(cc.logPath)
	if cc.err != nil {
		t.Errorf("hw check-config: %v\n%s", cc.err, out)
	}
	for _, want := range []string{"kernel: overlay", "kernel: br_netfilter", "kernel: xt_MASQUERADE", "cgroups: memory", "swap:",
		"capabilities", "tool: iptables", "port 6443 (kube-apiserver)", "port 10250 (kubelet)", "data dir " + server.dataDir, " fail\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("hw check-config does not name %q:\n%s", want, out)
		}
	}

	// The agent starts in the same instant as its server, as a script
	// starting both would: it waits for the server instead of giving up.
	const secret = "shared-secret-of-this-test"
	agent := newHWNode(t, netw.addNode(t, "agent"))
	writeWebappImageFrom(t, webapp, filepath.Join(agent.dataDir, "agent", "images", "webapp.tar"))
	p := server.server(t, "--token", secret, "--datastore-endpoint", endpoint, "--datastore-cafile", ca, "--datastore-certfile", cert, "--datastore-keyfile", key,
		"--node-label", "node-role.kubernetes.io/worker=true", "--node-label", "hw.test/site=lab")
	ap := agent.agent(t, "https://"+hostPort(server.ip, 6443), secret, "--node-label", "hw.test/site=field", "--node-taint", "dedicated=edge:NoSchedule")
	server.waitNodeReady(t, p, 4*time.Minute)
	agent.waitAgentReady(t, ap, 4*time.Minute)
	if log, _ := os.ReadFile(ap.logPath); !strings.Contains(string(log), "; retrying\" server=") {
		t.Errorf("the agent did not wait for its server (no retry in its log):\n%s", grepLines(ap.logPath, "[hw] ", 20))
	}

	// Labels and taints given on the command line are on the Nodes; a
	// server sets the one its kubelet may not.
	client := server.client(t)
	for name, want := range map[string]map[string]string{
		server.name: {"node-role.kubernetes.io/worker": "true", "hw.test/site": "lab", "node-role.kubernetes.io/control-plane": "true"},
		agent.name:  {"hw.test/site": "field"},
	} {
		n, err := client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if n.Labels[k] != v {
				t.Errorf("node %s: label %s=%q, want %q", name, k, n.Labels[k], v)
			}
		}
		if name == agent.name && !slices.ContainsFunc(n.Spec.Taints, func(tt corev1.Taint) bool {
			return tt.Key == "dedicated" && tt.Value == "edge" && tt.Effect == corev1.TaintEffectNoSchedule
		}) {
			t.Errorf("node %s: taints %v, want dedicated=edge:NoSchedule", name, n.Spec.Taints)
		}
	}

	// `hw crictl` is crictl's own code, built into hw: it lists a pod's
	// container on a node with no crictl installed.
	podOn(t, client, "crictl-probe", agent.name, "serve")
	runningPods(t, client, "default", "app=crictl-probe", 1)
	if path, err := exec.LookPath("crictl"); err == nil {
		t.Logf("note: a crictl is installed at %s; hw uses its own", path)
	}
	cp := agent.start(t, "crictl", "ps")
	select {
	case <-cp.exited:
	case <-time.After(time.Minute):
		t.Fatal("hw crictl ps still running after a minute")
	}
	if out, _ := os.ReadFile(cp.logPath); cp.err != nil || !strings.Contains(string(out), "crictl-probe") || !strings.Contains(string(out), "webapp") {
		t.Errorf("hw crictl ps: %v\n%s", cp.err, out)
	}
	// hw's own crictl ran: unpacked into /var/lib/hw (the node's var-lib-hw).
	if unpacked, _ := filepath.Glob(filepath.Join(agent.root, "var-lib-hw", "data", "*", "bin", "crictl")); len(unpacked) != 1 {
		t.Errorf("hw crictl did not unpack its own crictl into /var/lib/hw (found %v)", unpacked)
	}

	// The Node is in the external etcd.
	tlsConfig, err := transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: ca}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, TLS: tlsConfig,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return server.dial(ctx, "tcp", addr)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/registry/minions/"+server.name)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the external etcd has no Node %s: %v", server.name, err)
	}

	// No embedded etcd: nothing serves etcd on the node, and none started.
	for _, addr := range []string{"127.0.0.1:2379", net.JoinHostPort(server.ip, "2380")} {
		if c, err := server.dial(ctx, "tcp", addr); err == nil {
			c.Close()
			t.Errorf("something listens on %s on the server: an embedded etcd?", addr)
		}
	}
	if log, _ := os.ReadFile(p.logPath); strings.Contains(string(log), `"Starting component" component="etcd"`) {
		t.Error("the server started an embedded etcd")
	}
	if _, err := os.Stat(filepath.Join(server.dataDir, "server", "db", "etcd")); err == nil {
		t.Error("the server made an etcd data dir")
	}
}
