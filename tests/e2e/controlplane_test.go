//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestControlPlane starts `hw server` on a fresh data dir, checks what a user
// of the control plane would, restarts it, and checks nothing was lost.
func TestControlPlane(t *testing.T) {
	netw := newNetwork(t)
	node := newHWNode(t, netw.addNode(t, "cp"))
	ctx := context.Background()

	p := node.server(t)
	node.waitControlPlane(t, p, 3*time.Minute)
	client := node.client(t)

	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}

	// Even a single server elects, under its node's name: hw's election
	// (pkg/leader), so that a restart takes the leases back at once.
	for _, lease := range []string{"kube-controller-manager", "kube-scheduler", "hw-csr-approver"} {
		eventually(t, time.Minute, "lease "+lease+" held by "+node.name, func(ctx context.Context) error {
			l, err := client.CoordinationV1().Leases("kube-system").Get(ctx, lease, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != node.name {
				return fmt.Errorf("held by %v", l.Spec.HolderIdentity)
			}
			return nil
		})
	}

	// Anonymous access: health and version only.
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:     node.dial,
		TLSClientConfig: &tls.Config{RootCAs: serverCA(t, node)},
	}}
	for path, want := range map[string]int{
		"/api/v1/namespaces": http.StatusUnauthorized,
		"/api/v1/secrets":    http.StatusUnauthorized,
		"/readyz":            http.StatusOK,
		"/version":           http.StatusOK,
	} {
		resp, err := anon.Get("https://127.0.0.1:6443" + path)
		if err != nil {
			t.Fatalf("anonymous GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("anonymous GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}

	// The version every component reports is the embedded Kubernetes'.
	info, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.GitVersion != "v1.36.3" {
		t.Errorf("apiserver reports version %q, want v1.36.3", info.GitVersion)
	}

	// Secrets are encrypted at rest.
	const plaintext = "hunter2-plaintext-marker"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "e2e-secret"}, StringData: map[string]string{"password": plaintext}}
	if _, err := client.CoreV1().Secrets("default").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw := etcdGet(t, node, "/registry/secrets/default/e2e-secret")
	if !bytes.HasPrefix(raw, []byte("k8s:enc:secretbox:v1:")) {
		t.Errorf("secret in etcd starts with %q, want k8s:enc:secretbox:v1:", raw[:min(len(raw), 24)])
	}
	if bytes.Contains(raw, []byte(plaintext)) {
		t.Error("secret value is readable in etcd")
	}

	// Files a user or a joining node relies on.
	for path, mode := range map[string]os.FileMode{
		node.kubeconfig(): 0o600,
		filepath.Join(node.dataDir, "server", "token"):                    0o600,
		filepath.Join(node.dataDir, "server", "tls", "server-ca.key"):     0o600,
		filepath.Join(node.dataDir, "server", "cred", "admin.kubeconfig"): 0o600,
	} {
		st, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
		} else if st.Mode().Perm() != mode {
			t.Errorf("%s has mode %o, want %o", path, st.Mode().Perm(), mode)
		}
	}
	if st, err := os.Stat(filepath.Join(node.dataDir, "server", "logs", "audit.log")); err != nil || st.Size() == 0 {
		t.Errorf("audit log missing or empty: %v", err)
	}
	caBefore, _ := os.ReadFile(filepath.Join(node.dataDir, "server", "tls", "server-ca.crt"))
	tokenBefore, _ := os.ReadFile(filepath.Join(node.dataDir, "server", "token"))

	// Stop with SIGTERM: a clean exit, and everything is kept.
	if err := p.stop(t, time.Minute); err != nil {
		t.Errorf("hw exited with %v after SIGTERM, want a clean exit", err)
	}
	p = node.server(t)
	node.waitControlPlane(t, p, 3*time.Minute)
	got, err := node.client(t).CoreV1().Secrets("default").Get(ctx, "e2e-secret", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("secret after restart: %v", err)
	}
	if string(got.Data["password"]) != plaintext {
		t.Errorf("secret after restart = %q, want %q", got.Data["password"], plaintext)
	}
	caAfter, _ := os.ReadFile(filepath.Join(node.dataDir, "server", "tls", "server-ca.crt"))
	tokenAfter, _ := os.ReadFile(filepath.Join(node.dataDir, "server", "token"))
	if !bytes.Equal(caBefore, caAfter) || !bytes.Equal(tokenBefore, tokenAfter) {
		t.Error("restart replaced the CA or the join token")
	}
}

func serverCA(t *testing.T, node *hwNode) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(node.dataDir, "server", "tls", "server-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

// etcdGet reads a key straight from the node's etcd with its client certificate.
func etcdGet(t *testing.T, node *hwNode, key string) []byte {
	t.Helper()
	cli, err := nodeEtcdClient(node)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("etcd get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("etcd has no key %s", key)
	}
	return resp.Kvs[0].Value
}
