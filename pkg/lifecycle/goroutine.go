package lifecycle

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"

	"k8s.io/klog/v2"
)

// Goroutine implements Done, Err and Stop for a component whose work is one
// blocking function that returns when its context is cancelled. Embed it and
// call Go from Start.
type Goroutine struct {
	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Go runs fn in a goroutine under a context that Stop cancels. A panic in fn
// becomes the component's error instead of crashing the process.
func (g *Goroutine) Go(ctx context.Context, fn func(ctx context.Context) error) {
	g.once.Do(func() { g.done = make(chan struct{}) })
	ctx, g.cancel = context.WithCancel(ctx)
	go func() {
		defer close(g.done)
		defer func() {
			if r := recover(); r != nil {
				// A panic is hw's bug, not the user's: keep the stack for the report.
				klog.FromContext(ctx).Error(nil, "Component panicked", "panic", r, "stack", string(debug.Stack()))
				g.err = fmt.Errorf("panic: %v", r)
			}
		}()
		g.err = fn(ctx)
	}()
}

// Done is closed when fn has returned.
func (g *Goroutine) Done() <-chan struct{} {
	g.once.Do(func() { g.done = make(chan struct{}) })
	return g.done
}

// Err is fn's result; valid once Done is closed.
func (g *Goroutine) Err() error {
	select {
	case <-g.Done():
		return g.err
	default:
		return nil
	}
}

// Stop cancels fn's context and waits for it to return or ctx to end.
func (g *Goroutine) Stop(ctx context.Context) error {
	if g.cancel == nil {
		return nil
	}
	g.cancel()
	select {
	case <-g.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("still running after %w", ctx.Err())
	}
}

// WaitReady is a Ready for a goroutine component that closes ready once it
// serves: it returns when ready is closed, the goroutine ends, or ctx ends.
func (g *Goroutine) WaitReady(ctx context.Context, ready <-chan struct{}) error {
	select {
	case <-ready:
		return nil
	case <-g.Done():
		return fmt.Errorf("stopped before it was ready: %v", g.Err())
	case <-ctx.Done():
		return ctx.Err()
	}
}
