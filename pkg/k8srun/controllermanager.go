package k8srun

import (
	"context"

	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

// ControllerManager is a kube-controller-manager ready to run.
type ControllerManager struct {
	opts *cmoptions.KubeControllerManagerOptions
}

// NewControllerManager parses args as kube-controller-manager's flags.
func NewControllerManager(args Args) (*ControllerManager, error) {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	sets := s.Flags(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	s.ParsedFlags = &sets
	if err := args.parseInto(namedFlagSet(args.Component, sets)); err != nil {
		return nil, err
	}
	return &ControllerManager{opts: s}, nil
}

// Run runs the controllers until ctx is cancelled.
func (c *ControllerManager) Run(ctx context.Context) error {
	ctx = withLogger(ctx, "controller-manager")
	if err := c.opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cfg, err := c.opts.Config(ctx, cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	if err != nil {
		return err
	}
	return cmapp.Run(ctx, cfg.Complete())
}
