package k8srun

import (
	"context"

	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// Scheduler is a kube-scheduler ready to run.
type Scheduler struct {
	opts *scheduleroptions.Options
}

// NewScheduler parses args as kube-scheduler's flags.
func NewScheduler(args Args) (*Scheduler, error) {
	opts := scheduleroptions.NewOptions()
	if err := args.parseInto(namedFlagSet(args.Component, *opts.Flags)); err != nil {
		return nil, err
	}
	return &Scheduler{opts: opts}, nil
}

// Run schedules until ctx is cancelled.
func (s *Scheduler) Run(ctx context.Context) error {
	ctx = withLogger(ctx, "scheduler")
	if err := s.opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cc, sched, err := schedulerapp.Setup(ctx, s.opts)
	if err != nil {
		return err
	}
	return schedulerapp.Run(ctx, cc, sched)
}
