package etcdcluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/server/healthz"

	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// QuorumWatch logs how many etcd members answer, whenever that changes, and
// an error while a majority does not: the one line that explains an API
// refusing writes.
type QuorumWatch struct {
	lifecycle.Goroutine
	Endpoint string
	TLS      func() (*tls.Config, error)
	Every    time.Duration

	mu   sync.Mutex
	last Health
}

// ReadyzCheck fails the apiserver's /readyz, naming how many members answer
// of how many, while the last look found no quorum.
func (w *QuorumWatch) ReadyzCheck() healthz.HealthChecker {
	return healthz.NamedCheck("etcd-members", func(*http.Request) error {
		w.mu.Lock()
		h := w.last
		w.mu.Unlock()
		if h.Members > 0 && !h.Quorum() {
			return fmt.Errorf("no quorum: %s", h)
		}
		return nil
	})
}

var _ lifecycle.Component = (*QuorumWatch)(nil)

func (w *QuorumWatch) Name() string                    { return "etcd-quorum-watch" }
func (w *QuorumWatch) Init(ctx context.Context) error  { return nil }
func (w *QuorumWatch) Ready(ctx context.Context) error { return nil }

func (w *QuorumWatch) Start(ctx context.Context) error {
	tlsConfig, err := w.TLS()
	if err != nil {
		return err
	}
	c, err := Client([]string{w.Endpoint}, tlsConfig)
	if err != nil {
		return err
	}
	w.Go(ctx, func(ctx context.Context) error {
		defer c.Close()
		log := klog.FromContext(ctx)
		var last Health
		ticker := time.NewTicker(w.Every)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
			}
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			h, err := Check(callCtx, c)
			cancel()
			if err != nil {
				continue
			}
			w.mu.Lock()
			w.last = h
			w.mu.Unlock()
			switch {
			case !h.Quorum():
				log.Error(nil, "etcd has no quorum: the API refuses writes until a majority of members answer", "members", h.String())
			case h != last && last.Members > 0:
				log.Info("etcd membership", "members", h.String())
			}
			last = h
		}
	})
	return nil
}
