package lifecycle

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// Step is one named step of a plan: either a phase, a function that runs to
// completion (write the certificates, wait for the pod subnet), or a
// component, which the Manager starts and waits for until it is ready.
type Step struct {
	Name      string
	Run       func(ctx context.Context) error
	Component Component
}

// Phase is a step that runs fn to completion.
func Phase(name string, fn func(ctx context.Context) error) Step {
	return Step{Name: name, Run: fn}
}

// Start is a step that starts c and waits until it is ready.
func Start(c Component) Step {
	return Step{Name: c.Name(), Component: c}
}

// Plan is the ordered list of steps one command runs to boot.
type Plan struct {
	// Name is the command the plan boots: server, agent.
	Name  string
	Steps []Step
}

// Names lists the steps' names in order, components marked with a "+".
func (p Plan) Names() []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Name
		if s.Component != nil {
			out[i] = "+" + s.Name
		}
	}
	return out
}

// Index returns the position of the step called name, or -1.
func (p Plan) Index(name string) int {
	for i, s := range p.Steps {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// Init runs every component's Init, in plan order, and stops at the first
// error, which is returned as is: Init errors name what to fix.
func (p Plan) Init(ctx context.Context) error {
	log := klog.FromContext(ctx)
	for _, s := range p.Steps {
		if s.Component == nil {
			continue
		}
		begin := time.Now()
		if err := s.Component.Init(ctx); err != nil {
			return err
		}
		log.V(1).Info("Component configuration checked", "component", s.Name, "took", time.Since(begin).Round(time.Microsecond))
	}
	return nil
}

// Run checks every component's configuration (Init), then runs the steps in
// order, components under m, and stops at the first error. A phase's error
// is returned as is (phases write errors a user can act on); a component's
// names the component.
func (p Plan) Run(ctx context.Context, m *Manager) error {
	log := klog.FromContext(ctx)
	log.V(1).Info("Boot plan", "command", p.Name, "steps", strings.Join(p.Names(), " "))
	if err := p.Init(ctx); err != nil {
		return err
	}
	for _, s := range p.Steps {
		if s.Component != nil {
			if err := m.Start(ctx, s.Component); err != nil {
				return err
			}
			continue
		}
		if s.Run == nil {
			return fmt.Errorf("boot step %s has nothing to run", s.Name)
		}
		begin := time.Now()
		if err := s.Run(ctx); err != nil {
			return err
		}
		log.V(1).Info("Phase done", "phase", s.Name, "took", time.Since(begin).Round(time.Millisecond))
	}
	return nil
}
