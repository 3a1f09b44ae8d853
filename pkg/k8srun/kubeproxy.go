package k8srun

import (
	"context"

	"github.com/spf13/pflag"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
)

// KubeProxy is a kube-proxy ready to run.
type KubeProxy struct {
	opts *proxyapp.Options
}

// NewKubeProxy parses args as kube-proxy's flags, completes and validates them.
func NewKubeProxy(args Args) (*KubeProxy, error) {
	opts := proxyapp.NewOptions()
	fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	opts.AddFlags(fs)
	if err := args.parseInto(fs); err != nil {
		return nil, err
	}
	if err := opts.Complete(fs); err != nil {
		return nil, args.invalid(err)
	}
	if err := opts.Validate(); err != nil {
		return nil, args.invalid(err)
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
