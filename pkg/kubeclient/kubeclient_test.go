package kubeclient

import (
	"os"
	"path/filepath"
	"testing"
)

func TestConfigRaisesRateLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Config(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" || cfg.QPS != QPS || cfg.Burst != Burst {
		t.Fatalf("got host %s, QPS %v, burst %d", cfg.Host, cfg.QPS, cfg.Burst)
	}
	if _, err := Config(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing kubeconfig loaded")
	}
}
