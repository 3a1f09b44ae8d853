package logging

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

func TestComponentForFunc(t *testing.T) {
	for fn, want := range map[string]string{
		"k8s.io/kubernetes/pkg/controller/nodeipam.(*Controller).Run":    "controller-manager",
		"k8s.io/apiserver/pkg/server.(*GenericAPIServer).Run":            "apiserver",
		"k8s.io/kubernetes/pkg/scheduler.(*Scheduler).Run":               "scheduler",
		"k8s.io/kubernetes/pkg/kubelet.(*Kubelet).Run":                   "kubelet",
		"k8s.io/kubernetes/pkg/proxy/iptables.(*Proxier).syncProxyRules": "kube-proxy",
		"k8s.io/client-go/tools/cache.(*Reflector).ListAndWatch":         "k8s",
		"github.com/hw-k8s/hw/pkg/boot.Server":                           "hw",
	} {
		if got := componentForFunc(fn); got != want {
			t.Errorf("componentForFunc(%s) = %q, want %q", fn, got, want)
		}
	}
}

func TestLinesArePrefixed(t *testing.T) {
	var buf bytes.Buffer
	Setup(&buf, 0)
	klog.FromContext(klog.NewContext(context.Background(), klog.Background().WithName("etcd"))).Info("named logger")
	klog.InfoS("legacy call from hw")
	klog.Flush()
	out := buf.String()
	if !strings.Contains(out, "[etcd] I") || !strings.Contains(out, "named logger") {
		t.Errorf("named logger line not prefixed:\n%s", out)
	}
	if !strings.Contains(out, "[hw] I") || !strings.Contains(out, "logging_test.go") {
		t.Errorf("legacy klog call not attributed to hw with its own file:line:\n%s", out)
	}
	klog.V(1).InfoS("hidden at verbosity 0")
	if strings.Contains(buf.String(), "hidden") {
		t.Error("V(1) line printed at verbosity 0")
	}
}
