// Package boot holds the boot plans of `hw server` (server.go) and
// `hw agent` (agent.go), and the node both run (node.go): each an ordered
// list of named steps, phases and components, run by lifecycle.Plan after
// every component's configuration has been checked.
package boot

import (
	"encoding/json"

	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/sdnotify"
)

func mustJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings are passed
	}
	return string(data)
}

// tellServiceManagerReady lets a systemd Type=notify unit finish starting. A
// failure only costs the unit its start-up wait, so it is logged, not fatal.
func tellServiceManagerReady(log klog.Logger, n *sdnotify.Notifier) {
	if err := n.Ready(); err != nil {
		log.Error(err, "Could not tell the service manager hw is ready")
	}
}
