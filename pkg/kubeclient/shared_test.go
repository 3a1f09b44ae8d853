package kubeclient

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// Two components that read Nodes share one informer, which keeps running
// until Shutdown, whichever component started it.
func TestSharedInformersAreOnePerKind(t *testing.T) {
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	s := NewSharedFor(client)
	a, err := s.Informers()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Informers()
	if a.Core().V1().Nodes().Informer() != b.Core().V1().Nodes().Informer() {
		t.Fatal("two components got two Node informers")
	}
	s.StartInformers()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := a.Core().V1().Nodes()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		t.Fatal("Node informer did not sync")
	}
	if _, err := nodes.Lister().Get("n1"); err != nil {
		t.Errorf("node n1 not in the shared cache: %v", err)
	}
	if got, _ := s.Client(); got != client {
		t.Error("Client() is not the shared client")
	}
	s.Shutdown()
	if !nodes.Informer().IsStopped() {
		t.Error("Node informer still runs after Shutdown")
	}
}
