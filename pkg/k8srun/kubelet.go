package k8srun

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	cliflag "k8s.io/component-base/cli/flag"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
	kubeletoptions "k8s.io/kubernetes/cmd/kubelet/app/options"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
)

// Kubelet is a kubelet ready to run. hw configures it entirely through its
// flags (each KubeletConfiguration field has one), so the user's
// --kubelet-arg overrides land on the same typed configuration.
type Kubelet struct {
	server *kubeletoptions.KubeletServer
}

// NewKubelet parses args as kubelet's flags and validates the result.
func NewKubelet(args Args) (*Kubelet, error) {
	flags := kubeletoptions.NewKubeletFlags()
	cfg, err := kubeletoptions.NewKubeletConfiguration()
	if err != nil {
		return nil, err
	}
	fs := pflag.NewFlagSet("kubelet", pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	flags.AddFlags(fs)
	kubeletoptions.AddKubeletConfigFlags(fs, cfg)
	if err := args.parseInto(fs); err != nil {
		return nil, err
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(cfg.FeatureGates); err != nil {
		return nil, args.invalid(fmt.Errorf("feature gates: %w", err))
	}
	if err := kubeletoptions.ValidateKubeletFlags(flags); err != nil {
		return nil, args.invalid(err)
	}
	if err := kubeletvalidation.ValidateKubeletConfiguration(cfg, utilfeature.DefaultFeatureGate); err != nil {
		return nil, args.invalid(err)
	}
	return &Kubelet{server: &kubeletoptions.KubeletServer{KubeletFlags: *flags, KubeletConfiguration: *cfg}}, nil
}

// Run runs the kubelet until ctx is cancelled. Pods keep running after it
// stops: their containers belong to the shims.
func (k *Kubelet) Run(ctx context.Context) error {
	ctx = withLogger(ctx, "kubelet")
	deps, err := kubeletapp.UnsecuredDependencies(ctx, k.server, utilfeature.DefaultFeatureGate)
	if err != nil {
		return err
	}
	return kubeletapp.Run(ctx, k.server, deps, utilfeature.DefaultFeatureGate)
}
