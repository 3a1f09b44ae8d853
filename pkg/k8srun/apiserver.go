package k8srun

import (
	"context"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// APIServer is a kube-apiserver ready to run with the given arguments.
type APIServer struct {
	opts *apiserveroptions.ServerRunOptions
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
	return apiserverapp.Run(ctx, completed)
}
