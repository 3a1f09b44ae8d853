//go:build e2e

package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

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
// etcd, and the server runs no etcd of its own.
func TestExternalDatastore(t *testing.T) {
	netw := newNetwork(t)
	server := newHWNode(t, netw.addNode(t, "server"))
	endpoint, ca, cert, key := externalEtcd(t, netw)

	p := server.server(t, "--datastore-endpoint", endpoint, "--datastore-cafile", ca, "--datastore-certfile", cert, "--datastore-keyfile", key)
	server.waitNodeReady(t, p, 4*time.Minute)

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
