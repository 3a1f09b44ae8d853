package leader

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// counting is a component that records whether it runs.
type counting struct {
	lifecycle.Goroutine
	running atomic.Bool
	starts  atomic.Int32
}

func (c *counting) Name() string                    { return "counting" }
func (c *counting) Init(context.Context) error      { return nil }
func (c *counting) Ready(ctx context.Context) error { return nil }
func (c *counting) Start(ctx context.Context) error {
	c.starts.Add(1)
	c.running.Store(true)
	c.Go(ctx, func(ctx context.Context) error {
		<-ctx.Done()
		c.running.Store(false)
		return nil
	})
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * LeaseDuration)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// One lease, two servers: one runs the component, the other is ready
// without running it, and takes over once the first stops.
func TestOneServerRunsItAndAnotherTakesOver(t *testing.T) {
	clients := kubeclient.NewSharedFor(fake.NewClientset())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := &counting{}, &counting{}
	ea := New(a, Config{Lease: "test", Identity: "server-a", Clients: clients})
	eb := New(b, Config{Lease: "test", Identity: "server-b", Clients: clients})
	if err := ea.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ea.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.running.Load() {
		t.Fatal("the first server is ready but does not run the component")
	}
	if err := eb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eb.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if b.running.Load() {
		t.Fatal("both servers run the component")
	}
	if err := ea.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if a.running.Load() {
		t.Fatal("the component still runs after Stop")
	}
	if ea.Err() != nil {
		t.Fatalf("a clean stop reported %v", ea.Err())
	}
	waitFor(t, "the second server to take over", b.running.Load)
	if err := eb.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// A server that restarts under the same identity takes its lease back at
// once, without waiting for the lease it held when it was killed to expire.
func TestRestartedServerTakesItsLeaseBackAtOnce(t *testing.T) {
	client := fake.NewClientset()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := metav1.NewMicroTime(time.Now())
	holder, seconds := "server-a", int32(LeaseDuration/time.Second)
	// As a killed holder leaves it: held, just renewed, not released.
	if _, err := client.CoordinationV1().Leases(metav1.NamespaceSystem).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "test", Namespace: metav1.NamespaceSystem},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds,
			AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := &counting{}
	restarted := New(c, Config{Lease: "test", Identity: holder, Clients: kubeclient.NewSharedFor(client)})
	began := time.Now()
	if err := restarted.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > LeaseDuration/2 {
		t.Fatalf("took the lease back after %s; want at once", took)
	}
	if !c.running.Load() {
		t.Fatal("ready but not running")
	}
	// Another identity would have had to wait: the lease is held.
	other := &counting{}
	eo := New(other, Config{Lease: "test", Identity: "server-b", Clients: kubeclient.NewSharedFor(client)})
	if err := eo.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eo.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if other.running.Load() {
		t.Fatal("a second identity runs it while the lease is held")
	}
	_ = eo.Stop(ctx)
	_ = restarted.Stop(ctx)
}
