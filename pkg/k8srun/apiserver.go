package k8srun

import (
	"context"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/server/healthz"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// APIServer is a kube-apiserver ready to run with the given arguments.
type APIServer struct {
	opts *apiserveroptions.ServerRunOptions
	// ReadyzChecks are hw's own checks, added to /readyz beside upstream's.
	ReadyzChecks []healthz.HealthChecker
}

// NewAPIServer parses args as kube-apiserver's flags. The rest of the
// checks need the files earlier boot steps write, so they run in Run.
func NewAPIServer(args Args) (*APIServer, error) {
	s := apiserveroptions.NewServerRunOptions()
	if err := args.parseInto(namedFlagSet(args.Component, s.Flags())); err != nil {
		return nil, err
	}
	return &APIServer{opts: s}, nil
}

// Run serves until ctx is cancelled.
func (a *APIServer) Run(ctx context.Context) error {
	ctx = withLogger(ctx, "apiserver")
	if err := a.opts.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	completed, err := a.opts.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return utilerrors.NewAggregate(errs)
	}
	// As apiserverapp.Run does, with hw's readiness checks added before the
	// handlers are installed.
	cfg, err := apiserverapp.NewConfig(completed)
	if err != nil {
		return err
	}
	completedCfg, err := cfg.Complete()
	if err != nil {
		return err
	}
	server, err := apiserverapp.CreateServerChain(completedCfg)
	if err != nil {
		return err
	}
	if err := server.GenericAPIServer.AddReadyzChecks(a.ReadyzChecks...); err != nil {
		return err
	}
	prepared, err := server.PrepareRun()
	if err != nil {
		return err
	}
	return prepared.Run(ctx)
}
