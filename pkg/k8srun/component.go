package k8srun

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// runner is an upstream component with its flags parsed.
type runner interface {
	Run(ctx context.Context) error
}

// Component adapts an upstream Kubernetes component to lifecycle.Component.
type Component struct {
	lifecycle.Goroutine
	name  string
	args  []string
	parse func(args []string) (runner, error)
	ready func(ctx context.Context) error
}

var _ lifecycle.Component = (*Component)(nil)

// NewComponent returns a component that parses args with parse on Start (so
// a bad passthrough argument fails before anything runs), then runs it in the
// background. ready tells when it serves.
func NewComponent[R runner](name string, args []string, parse func([]string) (R, error), ready func(context.Context) error) *Component {
	return &Component{
		name: name,
		args: args,
		parse: func(a []string) (runner, error) {
			r, err := parse(a)
			return r, err
		},
		ready: ready,
	}
}

func (c *Component) Name() string { return c.name }

func (c *Component) Start(ctx context.Context) error {
	klog.FromContext(ctx).V(1).Info("Component arguments", "component", c.name, "args", strings.Join(c.args, " "))
	r, err := c.parse(c.args)
	if err != nil {
		return err
	}
	c.Go(ctx, r.Run)
	return nil
}

func (c *Component) Ready(ctx context.Context) error { return c.ready(ctx) }

// LocalComponentArgs are the arguments kube-controller-manager and
// kube-scheduler share on a single server: one kubeconfig for everything,
// serving only on loopback, no leader election, no profiling endpoints.
func LocalComponentArgs(kubeconfig string, port int) config.Args {
	return config.Args{
		"kubeconfig":                kubeconfig,
		"authentication-kubeconfig": kubeconfig,
		"authorization-kubeconfig":  kubeconfig,
		"bind-address":              "127.0.0.1",
		"secure-port":               fmt.Sprint(port),
		"leader-elect":              "false",
		"profiling":                 "false",
	}
}

// LocalHealth waits for a component's /healthz on loopback.
func LocalHealth(port int) func(context.Context) error {
	return func(ctx context.Context) error {
		return lifecycle.WaitHTTPOK(ctx, lifecycle.LocalHealthClient(), fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
	}
}
