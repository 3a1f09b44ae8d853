// Package network sets up the node's pod network: the CNI configuration
// kubelet's pods are wired with.
package network

import (
	"encoding/json"
	"path/filepath"

	"github.com/hw-k8s/hw/pkg/atomicfile"
)

// ConfFile is the name of hw's CNI configuration.
const ConfFile = "10-hw.conflist"

// BridgeName is the Linux bridge pods attach to.
const BridgeName = "cni0"

// WriteCNIConfig writes the CNI chain for pods of podCIDR: a bridge with
// host-local addresses, then portmap (hostPort) and bandwidth (traffic shaping).
// host-local records the addresses in use under ipamDir; in /run they are
// gone after a reboot, as the pods holding them are.
func WriteCNIConfig(dir, ipamDir, podCIDR string, mtu int) error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "hw",
		"plugins": []any{
			map[string]any{
				"type":         "bridge",
				"bridge":       BridgeName,
				"isGateway":    true,
				"ipMasq":       false, // flannel masquerades pod egress, once per node
				"hairpinMode":  true,
				"forceAddress": true,
				"mtu":          mtu,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": ipamDir,
					"ranges":  [][]map[string]string{{{"subnet": podCIDR}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
			map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, ConfFile), append(data, '\n'), 0o644)
}
