// Package leader runs a component on one server of a cluster at a time: the
// server holding a Lease in kube-system.
//
// hw elects for its components instead of letting kube-controller-manager
// and kube-scheduler do it themselves, because they end the process when
// they lose or give up their lease (the scheduler even on a clean stop),
// which in one process would take etcd and the apiserver down with them.
// The identity is the node's name, not a random one: a server that restarts
// takes its own lease back at once instead of waiting for it to expire.
package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// Timings of the election, upstream's defaults: a dead leader's lease is
// taken over within LeaseDuration + RetryPeriod.
const (
	LeaseDuration = 15 * time.Second
	RenewDeadline = 10 * time.Second
	RetryPeriod   = 2 * time.Second
)

// Config names the lease and who competes for it.
type Config struct {
	// Lease is the name of the Lease in kube-system.
	Lease string
	// Identity is this server's node name.
	Identity string
	Clients  *kubeclient.Shared
}

// Elected is a component that runs only while this server holds the lease.
// It is Ready once it leads and its component is ready, or once another
// server is seen leading. Losing the lease stops it with an error, as
// upstream's components exit, so hw stops and its supervisor restarts it.
type Elected struct {
	inner lifecycle.Component
	cfg   Config

	leading  chan struct{} // closed once inner has started
	follower chan struct{} // closed once another server is seen leading
	cancel   context.CancelFunc
	elector  chan struct{} // closed when the election loop has returned

	mu       sync.Mutex
	stopping bool
	started  bool
	once     sync.Once
	done     chan struct{}
	err      error
}

var _ lifecycle.Component = (*Elected)(nil)

// New wraps c so that it runs only on the holder of cfg.Lease.
func New(c lifecycle.Component, cfg Config) *Elected {
	return &Elected{
		inner: c, cfg: cfg,
		leading: make(chan struct{}), follower: make(chan struct{}),
		elector: make(chan struct{}), done: make(chan struct{}),
	}
}

func (e *Elected) Name() string                   { return e.inner.Name() }
func (e *Elected) Init(ctx context.Context) error { return e.inner.Init(ctx) }
func (e *Elected) Done() <-chan struct{}          { return e.done }

func (e *Elected) Err() error {
	select {
	case <-e.done:
		return e.err
	default:
		return nil
	}
}

func (e *Elected) finish(err error) {
	e.once.Do(func() {
		e.err = err
		close(e.done)
	})
}

// Start begins competing for the lease.
func (e *Elected) Start(ctx context.Context) error {
	client, err := e.cfg.Clients.Client()
	if err != nil {
		return err
	}
	log := klog.FromContext(ctx).WithValues("component", e.inner.Name(), "lease", e.cfg.Lease)
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: e.cfg.Lease},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.cfg.Identity},
	}
	var seenOnce sync.Once
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   LeaseDuration,
		RenewDeadline:   RenewDeadline,
		RetryPeriod:     RetryPeriod,
		ReleaseOnCancel: true,
		Name:            e.cfg.Lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leadCtx context.Context) { e.lead(klog.NewContext(ctx, log)) },
			OnStoppedLeading: func() {
				e.mu.Lock()
				stopping := e.stopping
				e.mu.Unlock()
				if stopping {
					return
				}
				log.Error(nil, "Lost the lease to another server; stopping")
				stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lifecycle.StopTimeout)
				defer cancel()
				_ = e.inner.Stop(stopCtx)
				e.finish(fmt.Errorf("lost the %s lease: this server could not renew it for %s (no etcd quorum, or its apiserver did not answer); hw stops so that two servers never run it at once, and runs again once restarted", e.cfg.Lease, RenewDeadline))
			},
			OnNewLeader: func(identity string) {
				if identity == e.cfg.Identity {
					return
				}
				log.Info("Runs on another server", "leader", identity)
				seenOnce.Do(func() { close(e.follower) })
			},
		},
	})
	if err != nil {
		return err
	}
	electCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	go func() {
		defer close(e.elector)
		le.Run(electCtx)
	}()
	return nil
}

// lead starts the component once this server holds the lease.
func (e *Elected) lead(ctx context.Context) {
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return
	}
	e.started = true
	klog.FromContext(ctx).Info("This server leads; starting")
	// Under the lock, so that Stop waits for a Start under way.
	err := e.inner.Start(context.WithoutCancel(ctx))
	e.mu.Unlock()
	if err != nil {
		e.finish(err)
		return
	}
	close(e.leading)
	go func() {
		<-e.inner.Done()
		e.mu.Lock()
		stopping := e.stopping
		e.mu.Unlock()
		if !stopping {
			e.finish(e.inner.Err())
		}
	}()
}

// Ready returns once the component leads here and is ready, or another
// server leads it.
func (e *Elected) Ready(ctx context.Context) error {
	select {
	case <-e.leading:
		return e.inner.Ready(ctx)
	case <-e.follower:
		return nil
	case <-e.done:
		if e.err != nil {
			return e.err
		}
		return errors.New("stopped before it was ready")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop stops the component first, then gives the lease up, so another
// server starts its copy only once this one has stopped.
func (e *Elected) Stop(ctx context.Context) error {
	e.mu.Lock()
	e.stopping = true
	started := e.started
	e.mu.Unlock()
	var err error
	if started {
		err = e.inner.Stop(ctx)
	}
	if e.cancel != nil {
		e.cancel()
		select {
		case <-e.elector:
		case <-ctx.Done():
		}
	}
	e.finish(nil)
	return err
}
