// Package k8srun runs the upstream Kubernetes components inside the hw process.
//
// It is the only package that imports k8s.io/kubernetes/cmd/*. Each Run*
// function parses the component's own command-line flags, so users' passthrough
// arguments mean exactly what they mean upstream, and then calls the same
// exported functions the upstream command does, but under hw's context rather
// than the component's own signal handler (which may exist only once per
// process). Logging is set up once, by SetupLogging, not per component.
package k8srun

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/klog/v2"
)

// parseFlags parses args into every flag set the component declares. An
// unknown or malformed argument is reported with the component's name.
func parseFlags(component string, sets cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(component, pflag.ContinueOnError)
	fs.SetOutput(discard{})
	for _, name := range sets.Order {
		fs.AddFlagSet(sets.FlagSets[name])
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %v", component, strings.TrimSpace(err.Error()))
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// withLogger names the component in its contextual logger, so its log lines
// carry its name.
func withLogger(ctx context.Context, component string) context.Context {
	return klog.NewContext(ctx, klog.Background().WithName(component))
}

func init() {
	// The components' loopback clients would otherwise log a warning for every
	// deprecated API they touch on purpose.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
}
