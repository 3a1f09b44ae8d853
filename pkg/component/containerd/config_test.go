package containerd

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestConfigIsValidTOMLWithEveryCNIBinDir(t *testing.T) {
	data, err := Config{
		Root: "/var/lib/hw/agent/containerd", State: "/run/hw/containerd", Address: "/run/hw/containerd/containerd.sock",
		BinDir: "/var/lib/hw/data/abc/bin", CNIBinDirs: []string{"/var/lib/hw/data/abc/bin", "/opt/cni/bin"},
		CNIConfDir: "/etc/cni/net.d", PauseImage: "hw.local/pause:1", Snapshotter: "overlayfs", ShimPath: "/x/containerd-shim-runc-v2",
	}.Render()
	if err != nil {
		t.Fatal(err)
	}
	var parsed map[string]any
	if err := toml.Unmarshal(data, &parsed); err != nil {
		t.Fatalf("not TOML: %v\n%s", err, data)
	}
	if !strings.Contains(string(data), `bin_dirs = ["/var/lib/hw/data/abc/bin", "/opt/cni/bin"]`) {
		t.Errorf("bin_dirs missing or wrong:\n%s", data)
	}
}
