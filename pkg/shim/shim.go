// Package shim lets hw serve as containerd-shim-runc-v2, so a node needs no
// separate shim binary. Shims are their own processes and outlive hw.
package shim

import (
	"context"
	"flag"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task/plugin" // the shim's task service
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// BinaryName is the name containerd runs the runc shim by.
const BinaryName = "containerd-shim-runc-v2"

// taskPlugin is the one registered plugin that belongs to the shim.
const taskPlugin = "io.containerd.ttrpc.v1.task"

// Invoked reports whether args are a shim invocation: containerd starts the
// shim by its name, and the shim re-executes itself (as hw, via
// /proc/self/exe) with -namespace as its first argument.
func Invoked(args []string) bool {
	return filepath.Base(args[0]) == BinaryName || (len(args) > 1 && args[1] == "-namespace")
}

// Run runs the shim; it does not return.
func Run() {
	// containerd's server plugins are linked into hw too, and the shim would
	// try to load every registered plugin: keep only the shim's own.
	keep := registry.Graph(func(r *plugin.Registration) bool { return r.URI() != taskPlugin })
	registry.Reset()
	for _, r := range keep {
		registry.Register(&r)
	}
	// The shim defines its flags on the process-wide flag set, where linked-in
	// packages (CoreDNS's) already put some of the same names.
	flag.CommandLine = flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	shim.RunShim(context.Background(), manager.NewShimManager("io.containerd.runc.v2"))
}
