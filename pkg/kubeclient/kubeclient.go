// Package kubeclient loads a kubeconfig hw wrote into a client configuration
// for hw's own controllers, and gives them an Event recorder.
package kubeclient

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
)

// Client-side rate limits of hw's own clients. client-go's defaults (5
// requests per second, bursts of 10) are meant for tools sharing a busy
// apiserver; hw's start-up makes a few dozen requests in a row (the
// auto-deploy pass alone makes about 25) and spent seconds waiting on them.
// These are kubelet's defaults.
const (
	QPS   = 50
	Burst = 100
)

// Config loads the kubeconfig at path.
func Config(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = QPS, Burst
	return cfg, nil
}

// EventRecorder records Events through client as source; stop flushes and
// ends it.
func EventRecorder(ctx context.Context, client kubernetes.Interface, source corev1.EventSource) (recorder record.EventRecorder, stop func()) {
	events := record.NewBroadcaster(record.WithContext(ctx))
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return events.NewRecorder(scheme.Scheme, source), events.Shutdown
}
