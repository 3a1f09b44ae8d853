package flannel

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNetConfPerBackend(t *testing.T) {
	_, cidr, _ := net.ParseCIDR("10.42.0.0/16")
	for backend, wantType := range map[string]string{"vxlan": "vxlan", "host-gw": "host-gw", "wireguard-native": "wireguard"} {
		data, err := Config{ClusterCIDR: cidr, Backend: backend}.NetConf()
		if err != nil {
			t.Fatalf("%s: %v", backend, err)
		}
		var conf struct {
			Network    string
			EnableIPv4 bool
			Backend    struct{ Type string }
		}
		if err := json.Unmarshal(data, &conf); err != nil {
			t.Fatal(err)
		}
		if conf.Network != "10.42.0.0/16" || !conf.EnableIPv4 || conf.Backend.Type != wantType {
			t.Errorf("%s: net-conf %s", backend, data)
		}
	}
	if _, err := (Config{ClusterCIDR: cidr, Backend: "udp"}).NetConf(); err == nil || !strings.Contains(err.Error(), "--flannel-backend") {
		t.Errorf("unknown backend: got %v", err)
	}
}

func TestPreviousLeaseFromSubnetFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subnet.env")
	network, subnet := readSubnetFile(path)
	if !network.Empty() || !subnet.Empty() {
		t.Errorf("no file: got %v %v, want empty", network, subnet)
	}
	os.WriteFile(path, []byte("FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"), 0o644)
	network, subnet = readSubnetFile(path)
	if network.String() != "10.42.0.0/16" || subnet.String() != "10.42.3.0/24" {
		t.Errorf("got network %v subnet %v, want 10.42.0.0/16 and 10.42.3.0/24", network, subnet)
	}
}
