// Package kubeclient loads a kubeconfig hw wrote into a client configuration
// for hw's own controllers, shares one client among them, and gives them an
// Event recorder.
package kubeclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
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

// resync is how often shared informers replay their cache to handlers.
const resync = 10 * time.Minute

// Shared is one client and one informer factory for the components on one
// side of a node (the server's controllers, or the node's own), made on first
// use: a boot plan is built before the kubeconfig it reads is written. Each
// kind of object is then listed and watched once, however many components
// read it.
type Shared struct {
	kubeconfig string

	once    sync.Once
	config  *rest.Config
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
	err     error

	stopOnce sync.Once
	stop     chan struct{}
}

// NewShared returns a Shared client for the kubeconfig at path.
func NewShared(kubeconfig string) *Shared {
	return &Shared{kubeconfig: kubeconfig, stop: make(chan struct{})}
}

// NewSharedFor shares an existing client (tests: a fake clientset).
func NewSharedFor(client kubernetes.Interface) *Shared {
	s := &Shared{stop: make(chan struct{})}
	s.once.Do(func() {
		s.config, s.client = &rest.Config{}, client
		s.factory = informers.NewSharedInformerFactory(client, resync)
	})
	return s
}

func (s *Shared) load() {
	s.once.Do(func() {
		if s.config, s.err = Config(s.kubeconfig); s.err != nil {
			s.err = fmt.Errorf("credentials %s: %w", s.kubeconfig, s.err)
			return
		}
		if s.client, s.err = kubernetes.NewForConfig(s.config); s.err == nil {
			s.factory = informers.NewSharedInformerFactory(s.client, resync)
		}
	})
}

// Informers is the shared informer factory. A component asks it for the
// informers it needs, then calls StartInformers and waits for their caches.
func (s *Shared) Informers() (informers.SharedInformerFactory, error) {
	s.load()
	return s.factory, s.err
}

// StartInformers starts the informers asked for so far. They run until
// Shutdown, not until the component that started them stops: another may
// read them.
func (s *Shared) StartInformers() {
	s.load()
	if s.factory != nil {
		s.factory.Start(s.stop)
	}
}

// Shutdown stops the informers and waits for them; call it once every
// component using them has stopped.
func (s *Shared) Shutdown() {
	s.stopOnce.Do(func() { close(s.stop) })
	if s.factory != nil {
		s.factory.Shutdown()
	}
}

// Client is the shared clientset.
func (s *Shared) Client() (kubernetes.Interface, error) {
	s.load()
	return s.client, s.err
}

// RESTConfig is the configuration the client was made from, for clients of
// other kinds (dynamic, discovery).
func (s *Shared) RESTConfig() (*rest.Config, error) {
	s.load()
	return s.config, s.err
}
