package config

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	kubeletapis "k8s.io/kubelet/pkg/apis"
)

// TaintEffects are the valid effects of a --node-taint.
var TaintEffects = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}

// ParseNodeLabel reads a --node-label KEY=VALUE.
func ParseNodeLabel(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("--node-label %q: want KEY=VALUE", s)
	}
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return "", "", fmt.Errorf("--node-label %q: key: %s", s, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return "", "", fmt.Errorf("--node-label %q: value: %s", s, strings.Join(errs, "; "))
	}
	return key, value, nil
}

// KubeletMayLabel reports whether a kubelet may give its own Node the label
// key: outside the kubernetes.io and k8s.io namespaces anything goes; inside
// them, only the few kubelet labels (NodeRestriction). Others, such as
// node-role.kubernetes.io/worker, need an administrator's rights.
func KubeletMayLabel(key string) bool {
	namespace, _, found := strings.Cut(key, "/")
	if !found {
		return true
	}
	for _, restricted := range []string{"kubernetes.io", "k8s.io"} {
		if namespace == restricted || strings.HasSuffix(namespace, "."+restricted) {
			return kubeletapis.IsKubeletLabel(key)
		}
	}
	return true
}

// ValidateNodeTaint checks a --node-taint KEY[=VALUE]:EFFECT.
func ValidateNodeTaint(s string) error {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok || !slices.Contains(TaintEffects, effect) {
		return fmt.Errorf("--node-taint %q: want KEY=VALUE:EFFECT, EFFECT one of %s", s, strings.Join(TaintEffects, ", "))
	}
	key, value, _ := strings.Cut(kv, "=")
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return fmt.Errorf("--node-taint %q: key: %s", s, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return fmt.Errorf("--node-taint %q: value: %s", s, strings.Join(errs, "; "))
	}
	return nil
}

// validateNodeOptions checks --node-label and --node-taint. An agent has no
// administrator's rights, so a label its kubelet may not set is refused.
func validateNodeOptions(labels, taints []string, agent bool) error {
	for _, l := range labels {
		key, _, err := ParseNodeLabel(l)
		if err != nil {
			return err
		}
		if agent && !KubeletMayLabel(key) {
			return fmt.Errorf("--node-label %q: an agent's kubelet may not give its Node labels under kubernetes.io or k8s.io (NodeRestriction); set it from a server with 'hw kubectl label node', or use another prefix", l)
		}
	}
	for _, t := range taints {
		if err := ValidateNodeTaint(t); err != nil {
			return err
		}
	}
	return nil
}
