package kubeclient

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
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

func TestEventRecorderPostsEvents(t *testing.T) {
	client := fake.NewClientset()
	recorder, stop := EventRecorder(context.Background(), client, corev1.EventSource{Component: "hw-test"})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}}
	recorder.Event(pod, corev1.EventTypeWarning, "PortInUse", "port 80 is taken")
	// Events are posted in the background; stop flushes them.
	var events *corev1.EventList
	for range 100 {
		events, _ = client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if len(events.Items) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if len(events.Items) != 1 || events.Items[0].Reason != "PortInUse" || events.Items[0].Source.Component != "hw-test" {
		t.Fatalf("events: %+v", events.Items)
	}
}
