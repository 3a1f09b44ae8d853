package k8srun

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
)

// KubeProxy is a kube-proxy ready to run.
type KubeProxy struct {
	opts *proxyapp.Options
}

// NewKubeProxy parses args as kube-proxy's flags, completes and validates them.
func NewKubeProxy(args []string) (*KubeProxy, error) {
	opts := proxyapp.NewOptions()
	fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	fs.SetOutput(discard{})
	opts.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("kube-proxy: %v", err)
	}
	if err := opts.Complete(fs); err != nil {
		return nil, fmt.Errorf("kube-proxy: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("kube-proxy: %w", err)
	}
	return &KubeProxy{opts: opts}, nil
}

// Run proxies until ctx is cancelled. Upstream's run loop never returns on
// its own once the proxy runs, so cancellation ends the wait here; the rules
// it programmed stay in place for the next start.
func (p *KubeProxy) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- p.opts.Run(withLogger(ctx, "kube-proxy")) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}
