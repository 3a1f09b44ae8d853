package kubeclient

import (
	"context"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Passes drives a controller that recomputes everything it owns in one pass
// (ServiceLB's addresses, a node's ports in use, the DNS configuration)
// rather than object by object. It is client-go's workqueue with one key:
// notifications that come while a pass waits coalesce into it, and one that
// comes during a pass makes exactly one more.
type Passes struct {
	queue workqueue.TypedInterface[string]
}

// passKey is the queue's only key.
const passKey = "pass"

// NewPasses returns an idle Passes; Run starts it.
func NewPasses() *Passes { return &Passes{queue: workqueue.NewTyped[string]()} }

// Notify asks for a pass. It never blocks.
func (p *Passes) Notify() { p.queue.Add(passKey) }

// Handler notifies on every add, update and delete of an informer's objects.
func (p *Passes) Handler() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.Notify() },
		UpdateFunc: func(any, any) { p.Notify() },
		DeleteFunc: func(any) { p.Notify() },
	}
}

// Run makes a first pass at once, then one after each notification, waiting
// settle first so a burst of edits makes one pass; with every > 0, also one
// every so often (a retry, or a look at state no event reports). It returns
// when ctx ends.
func (p *Passes) Run(ctx context.Context, every, settle time.Duration, pass func(ctx context.Context)) {
	stop := context.AfterFunc(ctx, p.queue.ShutDown)
	defer stop()
	if every > 0 {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-ticker.C:
					p.Notify()
				}
			}
		}()
	}
	p.Notify()
	for first := true; ; first = false {
		key, shutdown := p.queue.Get()
		if shutdown {
			return
		}
		if !first && settle > 0 {
			select {
			case <-time.After(settle):
			case <-ctx.Done():
				p.queue.Done(key)
				return
			}
		}
		pass(ctx)
		p.queue.Done(key)
	}
}
