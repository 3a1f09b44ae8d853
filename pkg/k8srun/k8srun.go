// Package k8srun runs the upstream Kubernetes components inside the hw process.
//
// It is the only package that imports k8s.io/kubernetes/cmd/*. Each New*
// function parses the component's own command-line flags, so users'
// passthrough arguments mean exactly what they mean upstream, and checks
// what can be checked before anything runs; Run then calls the same exported
// functions the upstream command does, but under hw's context rather than the
// component's own signal handler (which may exist only once per process).
// Logging is set up once, by pkg/logging, not per component.
package k8srun

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/config"
)

// Args are one component's command line: hw's own arguments and the user's
// passthrough KEY=VALUE overrides (--<component>-arg), kept apart so that an
// error names the user's argument it comes from.
type Args struct {
	// Component is the upstream name: kube-apiserver, kubelet, ...
	Component string
	Own       config.Args
	User      []string
}

// UserFlag is hw's flag that passes arguments to this component.
func (a Args) UserFlag() string { return "--" + a.Component + "-arg" }

// List is the whole command line as the component sees it, for the log.
func (a Args) List() []string { return a.Own.Merge(a.User).List() }

// parseInto parses hw's own arguments (less those the user overrides), then
// each of the user's in turn, into fs. An error in hw's own is hw's bug; an
// error in the user's names the argument, the flag that passed it and the
// component that refused it.
func (a Args) parseInto(fs *pflag.FlagSet) error {
	fs.SetOutput(io.Discard) // usage text and deprecation notices: the error says enough
	own := maps.Clone(a.Own)
	for _, u := range a.User {
		if k, _, err := config.SplitArg(u); err == nil {
			delete(own, k)
		}
	}
	if err := fs.Parse(own.List()); err != nil {
		return fmt.Errorf("%s: hw's own arguments are invalid (please report this bug): %v", a.Component, err)
	}
	for _, u := range a.User {
		k, v, err := config.SplitArg(u)
		if err != nil {
			return fmt.Errorf("%s %q: %v", a.UserFlag(), u, err)
		}
		if err := fs.Parse([]string{"--" + k + "=" + v}); err != nil {
			return fmt.Errorf("%s %s: %s refuses it: %v", a.UserFlag(), u, a.Component, strings.TrimSpace(err.Error()))
		}
	}
	return nil
}

// invalid reports a configuration the component refused after parsing: the
// user's arguments are the likely cause, since hw's own are tested.
func (a Args) invalid(err error) error {
	if len(a.User) == 0 {
		return fmt.Errorf("%s refuses hw's own configuration (please report this bug): %v", a.Component, err)
	}
	return fmt.Errorf("%s refuses its configuration (check %s %s): %v", a.Component, a.UserFlag(), strings.Join(a.User, " "), err)
}

// namedFlagSet joins a component's named flag sets into one.
func namedFlagSet(name string, sets cliflag.NamedFlagSets) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	for _, n := range sets.Order {
		fs.AddFlagSet(sets.FlagSets[n])
	}
	return fs
}

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
