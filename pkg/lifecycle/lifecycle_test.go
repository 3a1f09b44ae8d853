package lifecycle

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fake is a component whose readiness and failure the test controls.
type fake struct {
	Goroutine
	name  string
	log   *[]string
	ready chan struct{}
	fail  error
	// badConfig makes Init fail.
	badConfig error
}

func newFake(name string, log *[]string) *fake {
	f := &fake{name: name, log: log, ready: make(chan struct{})}
	close(f.ready)
	return f
}

func (f *fake) Name() string { return f.name }

func (f *fake) Init(ctx context.Context) error {
	*f.log = append(*f.log, "init "+f.name)
	return f.badConfig
}

func (f *fake) Start(ctx context.Context) error {
	*f.log = append(*f.log, "start "+f.name)
	f.Go(ctx, func(ctx context.Context) error {
		if f.fail != nil {
			return f.fail
		}
		<-ctx.Done()
		return nil
	})
	return nil
}

func (f *fake) Ready(ctx context.Context) error {
	select {
	case <-f.ready:
		*f.log = append(*f.log, "ready "+f.name)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fake) Stop(ctx context.Context) error {
	*f.log = append(*f.log, "stop "+f.name)
	return f.Goroutine.Stop(ctx)
}

func TestStartInOrderStopInReverse(t *testing.T) {
	var log []string
	m := NewManager()
	ctx := context.Background()
	for _, n := range []string{"etcd", "apiserver", "scheduler"} {
		if err := m.Start(ctx, newFake(n, &log)); err != nil {
			t.Fatal(err)
		}
	}
	m.Stop(ctx)
	want := "start etcd,ready etcd,start apiserver,ready apiserver,start scheduler,ready scheduler,stop scheduler,stop apiserver,stop etcd"
	if got := strings.Join(log, ","); got != want {
		t.Errorf("order:\n got %s\nwant %s", got, want)
	}
}

func TestCancellingStartContextDoesNotStopComponents(t *testing.T) {
	var log []string
	m := NewManager()
	ctx, cancel := context.WithCancel(context.Background())
	f := newFake("etcd", &log)
	if err := m.Start(ctx, f); err != nil {
		t.Fatal(err)
	}
	cancel() // a signal: shutdown is Stop's job, in reverse order
	select {
	case <-f.Done():
		t.Fatal("component stopped when the start context was cancelled")
	case <-time.After(100 * time.Millisecond):
	}
	m.Stop(context.Background())
	<-f.Done()
}

func TestExitBeforeReadyIsAnError(t *testing.T) {
	var log []string
	f := newFake("apiserver", &log)
	f.ready = make(chan struct{}) // never ready
	f.fail = errors.New("port 6443 in use")
	err := NewManager().Start(context.Background(), f)
	if err == nil || !strings.Contains(err.Error(), "port 6443 in use") || !strings.Contains(err.Error(), "apiserver") {
		t.Errorf("got %v, want the component's own error, named", err)
	}
}

func TestWaitReportsAComponentThatStops(t *testing.T) {
	var log []string
	m := NewManager()
	f := newFake("scheduler", &log)
	if err := m.Start(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	f.cancel() // the component's work ends on its own
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Wait(ctx); err == nil || !strings.Contains(err.Error(), "scheduler stopped") {
		t.Errorf("Wait = %v, want scheduler stopped", err)
	}
}

func TestPanicBecomesError(t *testing.T) {
	var g Goroutine
	g.Go(context.Background(), func(context.Context) error { panic("boom") })
	<-g.Done()
	if err := g.Err(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Err = %v, want the panic", err)
	}
}
