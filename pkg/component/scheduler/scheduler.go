// Package scheduler runs kube-scheduler inside the hw process.
package scheduler

import (
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/k8srun"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// Config is what kube-scheduler needs.
type Config struct {
	Kubeconfig string
	Port       int
	ExtraArgs  []string
}

// Args is hw's own kube-scheduler command line; ExtraArgs go on top.
func (c Config) Args() config.Args {
	return k8srun.LocalComponentArgs(c.Kubeconfig, c.Port)
}

// New returns the kube-scheduler component; nothing runs until Start.
func New(cfg Config) lifecycle.Component {
	return k8srun.NewComponent("kube-scheduler", cfg.Args(), cfg.ExtraArgs, k8srun.NewScheduler, k8srun.LocalHealth(cfg.Port))
}
