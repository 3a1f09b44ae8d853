package config

import (
	"strings"
	"testing"
)

func TestNodeLabelsAndTaints(t *testing.T) {
	for _, ok := range []struct {
		labels, taints []string
		agent          bool
	}{
		{[]string{"hw.example/site=lab", "plain=", "node.kubernetes.io/pool=a"}, []string{"dedicated=edge:NoSchedule", "gpu:NoExecute"}, true},
		{[]string{"node-role.kubernetes.io/worker=true"}, nil, false}, // a server sets it with its own rights
	} {
		if err := validateNodeOptions(ok.labels, ok.taints, ok.agent); err != nil {
			t.Errorf("%v %v: %v", ok.labels, ok.taints, err)
		}
	}
	for _, bad := range []struct {
		labels, taints []string
		agent          bool
		want           string
	}{
		{[]string{"novalue"}, nil, false, "want KEY=VALUE"},
		{[]string{"bad key=x"}, nil, false, "key:"},
		{[]string{"node-role.kubernetes.io/worker=true"}, nil, true, "NodeRestriction"},
		{nil, []string{"dedicated=edge"}, false, "EFFECT one of"},
		{nil, []string{"dedicated=edge:Sometimes"}, false, "EFFECT one of"},
	} {
		err := validateNodeOptions(bad.labels, bad.taints, bad.agent)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v %v (agent %v): %v, want %q", bad.labels, bad.taints, bad.agent, err, bad.want)
		}
	}
}

func TestKubeletMayLabel(t *testing.T) {
	for key, want := range map[string]bool{
		"site":                           true,
		"hw.example/site":                true,
		"node.kubernetes.io/pool":        true,
		"topology.kubernetes.io/zone":    true,
		"node-role.kubernetes.io/worker": false,
		"example.k8s.io/x":               false,
		"kubernetes.io/hostname":         true,
	} {
		if got := KubeletMayLabel(key); got != want {
			t.Errorf("KubeletMayLabel(%q) = %v, want %v", key, got, want)
		}
	}
}
