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
	args   Args
	parse  func(Args) (runner, error)
	ready  func(ctx context.Context) error
	runner runner
}

var _ lifecycle.Component = (*Component)(nil)

// NewComponent returns the upstream component name, to run with hw's own
// arguments and the user's overrides. Init parses them with parse, so a bad
// passthrough argument fails before anything runs; Start runs the component
// in the background; ready tells when it serves.
func NewComponent[R runner](name string, own config.Args, user []string, parse func(Args) (R, error), ready func(context.Context) error) *Component {
	return &Component{
		args: Args{Component: name, Own: own, User: user},
		parse: func(a Args) (runner, error) {
			r, err := parse(a)
			return r, err
		},
		ready: ready,
	}
}

func (c *Component) Name() string { return c.args.Component }

// Init parses and checks the component's arguments.
func (c *Component) Init(ctx context.Context) error {
	klog.FromContext(ctx).V(1).Info("Component arguments", "component", c.Name(), "args", strings.Join(c.args.List(), " "))
	r, err := c.parse(c.args)
	if err != nil {
		return err
	}
	c.runner = r
	return nil
}

func (c *Component) Start(ctx context.Context) error {
	if c.runner == nil {
		return fmt.Errorf("started before Init")
	}
	c.Go(ctx, c.runner.Run)
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
