package kubeclient

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestPassesCoalesceNotifications(t *testing.T) {
	p := NewPasses()
	ctx, cancel := context.WithCancel(context.Background())
	var count atomic.Int32
	inPass := make(chan struct{})
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, 0, 0, func(context.Context) {
			if count.Add(1) == 1 {
				close(inPass)
				<-release
			}
		})
	}()
	<-inPass
	// Three notifications during the first pass make exactly one more.
	p.Notify()
	p.Notify()
	p.Notify()
	close(release)
	deadline := time.After(30 * time.Second)
	for count.Load() < 2 {
		select {
		case <-deadline:
			t.Fatal("no second pass after notifications")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
	if n := count.Load(); n != 2 {
		t.Errorf("%d passes, want 2 (the first, then one for three notifications)", n)
	}
}
