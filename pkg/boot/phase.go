// Package boot holds the start-up sequences of `hw server` and `hw agent`:
// named steps run in order, then the components, each waited for until ready.
package boot

import (
	"context"
	"encoding/json"
	"time"

	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/sdnotify"
)

// Phase is one named step of a boot sequence.
type Phase struct {
	Name string
	Run  func(ctx context.Context) error
}

// runPhases runs each phase in order and stops at the first error, which is
// returned as is: phases write errors a user can act on.
func runPhases(ctx context.Context, phases []Phase) error {
	log := klog.FromContext(ctx)
	for _, p := range phases {
		begin := time.Now()
		if err := p.Run(ctx); err != nil {
			return err
		}
		log.V(1).Info("Phase done", "phase", p.Name, "took", time.Since(begin).Round(time.Millisecond))
	}
	return nil
}

// startInOrder starts each component and waits for it to be ready before
// the next; it stops at the first error.
func startInOrder(ctx context.Context, m *lifecycle.Manager, components ...lifecycle.Component) error {
	for _, c := range components {
		if err := m.Start(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// names lists the phases' names, in order; used by tests and --debug output.
func names(phases []Phase) []string {
	out := make([]string, len(phases))
	for i, p := range phases {
		out[i] = p.Name
	}
	return out
}

func mustJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings are passed
	}
	return string(data)
}

// tellServiceManagerReady lets a systemd Type=notify unit finish starting. A
// failure only costs the unit its start-up wait, so it is logged, not fatal.
func tellServiceManagerReady(log klog.Logger, n *sdnotify.Notifier) {
	if err := n.Ready(); err != nil {
		log.Error(err, "Could not tell the service manager hw is ready")
	}
}
