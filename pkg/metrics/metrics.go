// Package metrics serves the resource metrics API (metrics.k8s.io/v1beta1)
// from hw's server process, so `kubectl top` and HorizontalPodAutoscalers
// work without the metrics-server image: it reads every kubelet's
// /metrics/resource, keeps the last two readings of each node and container,
// and answers with the rate between them. The apiserver's aggregator reaches
// it through the Service kube-system/metrics-server (a packaged manifest).
package metrics

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// Interval is how often kubelets are read (metrics-server's default is 15 s).
const Interval = 10 * time.Second

// Config is what the metrics API needs.
type Config struct {
	// Addr is host:port to serve on, reachable from the apiserver.
	Addr string
	// ServingCert and ServingKey: signed by the CA in the APIService.
	ServingCert, ServingKey string
	// RequestHeaderCA verifies the aggregator's client certificate, which
	// must also have the CN system:auth-proxy (the apiserver's
	// requestheader-allowed-names).
	RequestHeaderCA string
	// KubeletClientCert/Key and KubeletCA reach kubelets, as the apiserver does.
	KubeletClientCert, KubeletClientKey, KubeletCA string
	// Clients list nodes and pods and review access with
	// SubjectAccessReviews (the admin's).
	Clients *kubeclient.Shared
}

// Server is the component.
type Server struct {
	lifecycle.Goroutine
	cfg    Config
	store  *store
	synced chan struct{}
}

var _ lifecycle.Component = (*Server)(nil)

// New returns the component; nothing runs until Start.
func New(cfg Config) *Server {
	return &Server{cfg: cfg, store: newStore(), synced: make(chan struct{})}
}

func (s *Server) Name() string { return "metrics-api" }

// Init checks the listening address.
func (s *Server) Init(ctx context.Context) error {
	if _, _, err := net.SplitHostPort(s.cfg.Addr); err != nil {
		return fmt.Errorf("metrics API address %q: %v", s.cfg.Addr, err)
	}
	return nil
}

func (s *Server) Start(ctx context.Context) error {
	serving, err := tls.LoadX509KeyPair(s.cfg.ServingCert, s.cfg.ServingKey)
	if err != nil {
		return fmt.Errorf("metrics API serving certificate: %w", err)
	}
	proxyCA, err := os.ReadFile(s.cfg.RequestHeaderCA)
	if err != nil {
		return err
	}
	proxyCAs := x509.NewCertPool()
	if !proxyCAs.AppendCertsFromPEM(proxyCA) {
		return fmt.Errorf("%s holds no PEM certificate", s.cfg.RequestHeaderCA)
	}
	authn, err := newAuthenticator(proxyCA)
	if err != nil {
		return fmt.Errorf("metrics API request-header authentication: %w", err)
	}
	client, err := s.cfg.Clients.Client()
	if err != nil {
		return err
	}
	authz, err := newAuthorizer(client)
	if err != nil {
		return fmt.Errorf("metrics API authorization: %w", err)
	}
	kubeletCAs, err := certPool(s.cfg.KubeletCA)
	if err != nil {
		return err
	}
	kubeletClient, err := tls.LoadX509KeyPair(s.cfg.KubeletClientCert, s.cfg.KubeletClientKey)
	if err != nil {
		return fmt.Errorf("kubelet client certificate: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("metrics API cannot listen on %s: %w", s.cfg.Addr, err)
	}
	scraper := newKubeletScraper(&tls.Config{RootCAs: kubeletCAs, Certificates: []tls.Certificate{kubeletClient}, MinVersion: tls.VersionTLS12})
	ln = tls.NewListener(ln, servingTLSConfig(serving, proxyCAs))
	s.Go(ctx, func(ctx context.Context) error { return s.run(ctx, ln, scraper, authn, authz) })
	return nil
}

// servingTLSConfig asks for a client certificate from the request-header CA
// but doesn't require one: the authenticator refuses requests without it
// with a 401 the aggregator understands, rather than a failed handshake.
func servingTLSConfig(serving tls.Certificate, proxyCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    proxyCAs,
		MinVersion:   tls.VersionTLS12,
	}
}

// Ready returns once the API answers (readings follow within two intervals).
func (s *Server) Ready(ctx context.Context) error { return s.WaitReady(ctx, s.synced) }

func (s *Server) run(ctx context.Context, ln net.Listener, scraper *kubeletScraper, authn authenticator.Request, authz authorizer.Authorizer) error {
	log := klog.FromContext(ctx).WithName("metrics")
	ctx = klog.NewContext(ctx, log)
	factory, err := s.cfg.Clients.Informers()
	if err != nil {
		ln.Close()
		return err
	}
	nodes := factory.Core().V1().Nodes()
	pods := factory.Core().V1().Pods()
	nodes.Informer()
	pods.Informer()
	s.cfg.Clients.StartInformers()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced, pods.Informer().HasSynced) {
		ln.Close()
		return nil
	}
	srv := &http.Server{
		Handler:           &api{store: s.store, nodes: nodes.Lister(), pods: pods.Lister(), authn: authn, authz: authz},
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	close(s.synced)
	log.Info("Serving metrics.k8s.io", "addr", s.cfg.Addr)
	if _, port, err := net.SplitHostPort(s.cfg.Addr); err == nil {
		if n, err := strconv.Atoi(port); err == nil {
			client, err := s.cfg.Clients.Client()
			if err != nil {
				return err
			}
			go mirrorServers(ctx, client, int32(n))
		}
	}

	ticker := time.NewTicker(Interval)
	defer ticker.Stop()
	failing := map[string]bool{}
	for {
		s.scrapeAll(ctx, scraper, nodes.Lister(), failing)
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(shutdown)
			return nil
		case err := <-serveErr:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("metrics API: %w", err)
		case <-ticker.C:
		}
	}
}

// scrapeAll reads every kubelet at once; a kubelet that fails is logged
// when it starts and stops failing, not on every pass.
func (s *Server) scrapeAll(ctx context.Context, scraper *kubeletScraper, lister corelisters.NodeLister, failing map[string]bool) {
	log := klog.FromContext(ctx)
	nodes, err := lister.List(labels.Everything())
	if err != nil {
		return
	}
	keep := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range nodes {
		keep[n.Name] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			families, err := scraper.scrape(ctx, n)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !failing[n.Name] && ctx.Err() == nil {
					log.Info("Cannot read the kubelet's resource metrics; retrying", "node", n.Name, "err", err)
				}
				failing[n.Name] = true
				return
			}
			if failing[n.Name] {
				log.Info("Reading the kubelet's resource metrics again", "node", n.Name)
				delete(failing, n.Name)
			}
			s.store.update(n.Name, families)
		}()
	}
	wg.Wait()
	s.store.forget(keep)
}

func certPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
