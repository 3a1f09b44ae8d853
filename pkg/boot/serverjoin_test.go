package boot

import (
	"strings"
	"testing"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/join"
)

func clusterSettings() join.Settings {
	return join.Settings{ClusterCIDR: "10.50.0.0/16", ServiceCIDR: "10.60.0.0/16", ClusterDNS: "10.60.0.10", ClusterDomain: "edge.local", FlannelBackend: "host-gw", DisableNetworkPolicy: true}
}

// A joining server takes the cluster's settings it was not given.
func TestJoiningServerTakesTheClusterSettings(t *testing.T) {
	cfg := config.NewServer()
	if err := adoptClusterSettings(cfg, clusterSettings()); err != nil {
		t.Fatal(err)
	}
	if cfg.ClusterCIDR.String() != "10.50.0.0/16" || cfg.ServiceCIDR.String() != "10.60.0.0/16" || cfg.ClusterDNS.String() != "10.60.0.10" ||
		cfg.ClusterDomain != "edge.local" || cfg.FlannelBackend != "host-gw" || !cfg.DisableNetworkPolicy {
		t.Errorf("settings not adopted: %+v", cfg)
	}
	if cfg.FirstServiceIP().String() != "10.60.0.1" {
		t.Errorf("first service IP %s", cfg.FirstServiceIP())
	}
}

// One given with another value is refused, each conflict named; one given
// with the cluster's value is fine.
func TestJoiningServerRefusesConflictingSettings(t *testing.T) {
	cfg := config.NewServer()
	cfg.Given = []string{"cluster-cidr", "flannel-backend", "cluster-domain", "disable-network-policy"}
	cfg.ClusterDomain = "edge.local" // given, and the cluster's
	err := adoptClusterSettings(cfg, clusterSettings())
	if err == nil {
		t.Fatal("conflicting settings accepted")
	}
	for _, want := range []string{"--cluster-cidr 10.42.0.0/16 (the cluster's is 10.50.0.0/16)", "--flannel-backend vxlan (the cluster's is host-gw)",
		"--disable-network-policy false (the cluster's is true)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "cluster-domain") {
		t.Errorf("error names a setting that agrees: %v", err)
	}
}
