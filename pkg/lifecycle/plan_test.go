package lifecycle

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"k8s.io/klog/v2"
)

func TestPlanInitsEveryComponentBeforeAnyStep(t *testing.T) {
	var log []string
	phase := func(name string) Step {
		return Phase(name, func(context.Context) error { log = append(log, "run "+name); return nil })
	}
	p := Plan{Name: "test", Steps: []Step{
		phase("pki"),
		Start(newFake("etcd", &log)),
		phase("roles"),
		Start(newFake("kubelet", &log)),
	}}
	m := NewManager()
	if err := p.Run(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	m.Stop(context.Background())
	want := "init etcd,init kubelet,run pki,start etcd,ready etcd,run roles,start kubelet,ready kubelet,stop kubelet,stop etcd"
	if got := strings.Join(log, ","); got != want {
		t.Errorf("order:\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(p.Names(), " "); got != "pki +etcd roles +kubelet" {
		t.Errorf("Names() = %q", got)
	}
	if p.Index("roles") != 2 || p.Index("nope") != -1 {
		t.Errorf("Index: roles at %d, nope at %d", p.Index("roles"), p.Index("nope"))
	}
}

func TestPlanRefusesBadConfigBeforeAnythingRuns(t *testing.T) {
	var log []string
	bad := newFake("kubelet", &log)
	bad.badConfig = errors.New(`--kubelet-arg max-pods=banana: invalid argument`)
	p := Plan{Name: "test", Steps: []Step{
		Phase("pki", func(context.Context) error { log = append(log, "run pki"); return nil }),
		Start(newFake("etcd", &log)),
		Start(bad),
	}}
	m := NewManager()
	err := p.Run(context.Background(), m)
	if err == nil || !strings.Contains(err.Error(), "max-pods=banana") {
		t.Fatalf("Run() = %v, want the kubelet's Init error", err)
	}
	m.Stop(context.Background())
	if got := strings.Join(log, ","); got != "init etcd,init kubelet" {
		t.Errorf("ran %s; want only the two Inits", got)
	}
}

func TestPlanStopsAtFailingPhase(t *testing.T) {
	var log []string
	p := Plan{Name: "test", Steps: []Step{
		Phase("pki", func(context.Context) error { return errors.New("disk full") }),
		Start(newFake("etcd", &log)),
	}}
	m := NewManager()
	if err := p.Run(context.Background(), m); err == nil || err.Error() != "disk full" {
		t.Fatalf("Run() = %v, want the phase's error as is", err)
	}
	m.Stop(context.Background())
	if got := strings.Join(log, ","); got != "init etcd" {
		t.Errorf("ran %s; etcd must not start after a failed phase", got)
	}
}

// --debug (verbosity 1) shows the plan before it runs and each step's time.
func TestPlanLogsItselfAndStepTimes(t *testing.T) {
	var lines []string
	logger := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: 1})
	ctx := klog.NewContext(context.Background(), logger)
	var log []string
	p := Plan{Name: "test", Steps: []Step{
		Phase("pki", func(context.Context) error { return nil }),
		Start(newFake("etcd", &log)),
	}}
	m := NewManager()
	if err := p.Run(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.Stop(ctx)
	all := strings.Join(lines, "\n")
	for _, want := range []string{`"msg"="Boot plan"`, `"steps"="pki +etcd"`, `"msg"="Phase done" "phase"="pki" "took"`, `"msg"="Component ready" "component"="etcd" "took"`} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %s:\n%s", want, all)
		}
	}
}
