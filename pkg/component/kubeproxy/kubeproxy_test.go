package kubeproxy

import (
	"errors"
	"strings"
	"testing"

	"github.com/hw-k8s/hw/pkg/preflight"
)

func TestMissingToolsAreNamed(t *testing.T) {
	have := map[string]bool{"iptables": true, "iptables-save": true}
	look := func(name string) (string, error) {
		if have[name] {
			return "/usr/sbin/" + name, nil
		}
		return "", errors.New("not found")
	}
	err := preflight.CheckTools("kube-proxy", RequiredTools("iptables"), look)
	if err == nil || !strings.Contains(err.Error(), "iptables-restore, ip6tables") || !strings.Contains(err.Error(), "apt-get install iptables") {
		t.Errorf("got %v, want the missing tools named with the fix", err)
	}
	if err := preflight.CheckTools("kube-proxy", RequiredTools("nftables"), look); err == nil || !strings.Contains(err.Error(), "nft") {
		t.Errorf("nftables mode without nft: got %v", err)
	}
	have["nft"] = true
	if err := preflight.CheckTools("kube-proxy", RequiredTools("nftables"), look); err != nil {
		t.Errorf("nftables mode with nft: %v", err)
	}
}

func TestUserCanChooseNftables(t *testing.T) {
	c := Config{ExtraArgs: []string{"proxy-mode=nftables"}}
	if c.Mode() != "nftables" {
		t.Errorf("mode = %q, want nftables", c.Mode())
	}
}
