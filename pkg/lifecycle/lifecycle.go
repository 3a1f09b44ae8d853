// Package lifecycle gives every hw component the same small life:
// Init (build and check the whole configuration) → Start → Ready → Stop.
//
// A Plan is one command's boot sequence: named steps, each a phase (a
// function run to completion) or a component. It runs every component's Init
// before the first step, so a bad setting is refused before anything runs.
// The Manager starts components in the order given, waits for each to be
// ready before starting the next, watches them while they run, and stops them
// in reverse order.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// Component is one part of a node: etcd, the apiserver, containerd, ...
type Component interface {
	// Name is the short name used in logs and errors.
	Name() string
	// Init builds and checks the component's complete configuration,
	// including the user's passthrough arguments. It runs for every
	// component of a plan before any starts, so it must not write files or
	// start anything; its errors name the setting to fix.
	Init(ctx context.Context) error
	// Start launches the component and returns without waiting for it to be
	// ready. It fails only for errors found before anything runs.
	Start(ctx context.Context) error
	// Ready blocks until the component serves, or ctx ends.
	Ready(ctx context.Context) error
	// Done is closed when the component has stopped running; Err then says why.
	Done() <-chan struct{}
	// Err is nil for a clean stop.
	Err() error
	// Stop asks the component to stop and waits for it, at most until ctx ends.
	// It may be called at any time and more than once.
	Stop(ctx context.Context) error
}

// ReadyTimeout bounds how long the manager waits for one component.
const ReadyTimeout = 3 * time.Minute

// Manager runs an ordered list of components.
type Manager struct {
	started []Component
	// exited receives the first component that stops while the node runs.
	exited chan Component
}

// NewManager returns an empty manager.
func NewManager() *Manager {
	return &Manager{exited: make(chan Component, 1)}
}

// Start starts c and waits until it is ready. If c stops before it is ready,
// its error is returned.
func (m *Manager) Start(ctx context.Context, c Component) error {
	log := klog.FromContext(ctx)
	begin := time.Now()
	log.Info("Starting component", "component", c.Name())
	// A component runs until Stop, not until ctx ends: shutdown must go in
	// reverse order (kubelet before the apiserver, etcd last), which a shared
	// cancellation would defeat. ctx still bounds the wait for readiness.
	if err := c.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("%s: %w", c.Name(), err)
	}
	m.started = append(m.started, c)
	go func() {
		<-c.Done()
		select {
		case m.exited <- c:
		default:
		}
	}()

	readyCtx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	readyErr := make(chan error, 1)
	go func() { readyErr <- c.Ready(readyCtx) }()
	select {
	case err := <-readyErr:
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%s was not ready within %s", c.Name(), ReadyTimeout)
			}
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
	case <-c.Done():
		return exitError(c)
	}
	log.Info("Component ready", "component", c.Name(), "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// Wait blocks until ctx ends (nil) or a component stops on its own (its error).
func (m *Manager) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case c := <-m.exited:
		return exitError(c)
	}
}

// StopTimeout bounds how long the manager waits for one component to stop.
// kube-apiserver, for one, waits for open watches to end, and in-process
// clients may hold them: waiting longer gains nothing, since the process is
// about to exit. etcd, which holds the data, closes fully whatever this says.
const StopTimeout = 5 * time.Second

// Stop stops all started components in reverse order, each within StopTimeout.
func (m *Manager) Stop(ctx context.Context) {
	log := klog.FromContext(ctx)
	for i := len(m.started) - 1; i >= 0; i-- {
		c := m.started[i]
		log.Info("Stopping component", "component", c.Name())
		begin := time.Now()
		stopCtx, cancel := context.WithTimeout(ctx, StopTimeout)
		err := c.Stop(stopCtx)
		cancel()
		if err != nil {
			log.Error(err, "Component did not stop cleanly", "component", c.Name())
			continue
		}
		log.V(1).Info("Component stopped", "component", c.Name(), "took", time.Since(begin).Round(time.Millisecond))
	}
	m.started = nil
}

func exitError(c Component) error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("%s stopped: %w", c.Name(), err)
	}
	return fmt.Errorf("%s stopped unexpectedly", c.Name())
}
