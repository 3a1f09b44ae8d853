// Package logging routes the logs of every component in the hw process to one
// stream, each line prefixed with the component that wrote it.
package logging

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

// All Kubernetes components in hw log through klog's one global logger. To let
// a reader tell them apart, hw installs a logr sink that puts the component's
// name in front of each line. The name comes from the contextual logger's name
// where a component uses one, otherwise from the package that logged.
var componentByPackage = []struct{ prefix, name string }{
	{"k8s.io/kubernetes/cmd/kube-apiserver", "apiserver"},
	{"k8s.io/kubernetes/pkg/controlplane", "apiserver"},
	{"k8s.io/kubernetes/pkg/registry", "apiserver"},
	{"k8s.io/kubernetes/pkg/kubeapiserver", "apiserver"},
	{"k8s.io/kubernetes/plugin/pkg/admission", "apiserver"},
	{"k8s.io/kubernetes/plugin/pkg/auth", "apiserver"},
	{"k8s.io/apiextensions-apiserver", "apiserver"},
	{"k8s.io/kube-aggregator", "apiserver"},
	{"k8s.io/apiserver", "apiserver"},
	{"k8s.io/kubernetes/cmd/kube-controller-manager", "controller-manager"},
	{"k8s.io/kubernetes/pkg/controller", "controller-manager"},
	{"k8s.io/controller-manager", "controller-manager"},
	{"k8s.io/kubernetes/cmd/kube-scheduler", "scheduler"},
	{"k8s.io/kubernetes/pkg/scheduler", "scheduler"},
	{"k8s.io/kubernetes/cmd/kubelet", "kubelet"},
	{"k8s.io/kubernetes/pkg/kubelet", "kubelet"},
	{"k8s.io/kubernetes/cmd/kube-proxy", "kube-proxy"},
	{"k8s.io/kubernetes/pkg/proxy", "kube-proxy"},
	{"github.com/flannel-io/flannel", "flannel"},
	{"github.com/hw-k8s/hw", "hw"},
}

var (
	setupOnce sync.Once
	// output is where every component's lines go; set once by Setup.
	output io.Writer = &lockedWriter{w: os.Stderr}
)

// Setup routes klog (and so every embedded Kubernetes component) to w,
// with a component prefix on each line. verbosity is klog's -v. It acts once
// per process; later calls are ignored, because klog is process-wide.
func Setup(w io.Writer, verbosity int) {
	setupOnce.Do(func() {
		fs := flag.NewFlagSet("klog", flag.ContinueOnError)
		klog.InitFlags(fs)
		_ = fs.Set("v", fmt.Sprint(verbosity))
		_ = fs.Set("logtostderr", "true")
		output = &lockedWriter{w: w}
		sink := &routingSink{out: output, verbosity: verbosity, sinks: map[string]logr.LogSink{}, mu: &sync.Mutex{}}
		klog.SetLoggerWithOptions(logr.New(sink), klog.ContextualLogger(true))
	})
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// prefixWriter puts "[name] " before every line.
type prefixWriter struct {
	prefix []byte
	out    io.Writer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var buf []byte
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		buf = append(buf, p.prefix...)
		buf = append(buf, line...)
	}
	if _, err := p.out.Write(buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

type routingSink struct {
	out       io.Writer
	verbosity int
	mu        *sync.Mutex
	sinks     map[string]logr.LogSink // one klog text sink per component

	name   string // first WithName, if any
	names  []string
	values []any
	depth  int
}

var _ logr.CallDepthLogSink = (*routingSink)(nil)

func (s *routingSink) Init(logr.RuntimeInfo) {}

func (s *routingSink) Enabled(level int) bool { return level <= s.verbosity }

func (s *routingSink) Info(level int, msg string, kv ...any) {
	s.target().Info(level, msg, kv...)
}

func (s *routingSink) Error(err error, msg string, kv ...any) {
	s.target().Error(err, msg, kv...)
}

// target picks the component's sink and applies this logger's names, values
// and call depth to it.
func (s *routingSink) target() logr.LogSink {
	component := s.name
	if component == "" {
		component = componentOf()
	}
	s.mu.Lock()
	base, ok := s.sinks[component]
	if !ok {
		cfg := textlogger.NewConfig(
			textlogger.Output(&prefixWriter{prefix: []byte("[" + component + "] "), out: s.out}),
			textlogger.Verbosity(s.verbosity),
		)
		base = textlogger.NewLogger(cfg).GetSink()
		s.sinks[component] = base
	}
	s.mu.Unlock()
	sink := base.(logr.CallDepthLogSink).WithCallDepth(s.depth + 1)
	for _, n := range s.names[min(1, len(s.names)):] {
		sink = sink.WithName(n)
	}
	if len(s.values) > 0 {
		sink = sink.WithValues(s.values...)
	}
	return sink
}

func (s *routingSink) WithValues(kv ...any) logr.LogSink {
	c := *s
	c.values = append(append([]any(nil), s.values...), kv...)
	return &c
}

func (s *routingSink) WithName(name string) logr.LogSink {
	c := *s
	if c.name == "" {
		c.name = name
	}
	c.names = append(append([]string(nil), s.names...), name)
	return &c
}

func (s *routingSink) WithCallDepth(depth int) logr.LogSink {
	c := *s
	c.depth += depth
	return &c
}

// componentOf names the component of the first function up the stack that
// is not part of the logging machinery (klog, logr, this package).
func componentOf() string {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if !isLoggingFrame(f.Function) {
			return componentForFunc(f.Function)
		}
		if !more {
			return "k8s"
		}
	}
}

func isLoggingFrame(fn string) bool {
	return strings.HasPrefix(fn, "k8s.io/klog/") || strings.HasPrefix(fn, "github.com/go-logr/") ||
		strings.HasPrefix(fn, "github.com/hw-k8s/hw/pkg/logging.(*routingSink)")
}

func componentForFunc(name string) string {
	for _, c := range componentByPackage {
		if strings.HasPrefix(name, c.prefix) {
			return c.name
		}
	}
	return "k8s"
}

// Writer returns an io.Writer that logs each line under name, for libraries
// with loggers of their own (etcd's zap, containerd's logrus).
func Writer(name string) io.Writer {
	return &prefixWriter{prefix: []byte("[" + name + "] "), out: output}
}
