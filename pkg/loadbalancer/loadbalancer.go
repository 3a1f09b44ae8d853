// Package loadbalancer is the client-side load balancer of an agent: a TCP
// proxy on loopback (127.0.0.1:6444) through which the node's kubelet,
// kube-proxy, flannel and hw's own clients reach the cluster's apiservers.
//
// It learns every server from the `kubernetes` Service's endpoints (which
// the apiservers keep to the live ones), saves the list so a restarted agent
// finds the servers even when the one its --server names is gone, checks
// them every few seconds, and sends each new connection to a server that
// answers: the one in use while it answers, else the next. Connections to a
// server found dead are closed, so clients reconnect through another.
// TLS passes through untouched: every apiserver's certificate carries
// 127.0.0.1.
package loadbalancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/atomicfile"
	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// DefaultPort is where agents' components reach the apiservers, as k3s has it.
const DefaultPort = 6444

// Timings: how often servers are checked and learnt, how long a dial may take.
const (
	checkEvery  = 5 * time.Second
	learnEvery  = 15 * time.Second
	dialTimeout = 3 * time.Second
)

// Config is one load balancer.
type Config struct {
	// Listen is the loopback address to serve, 127.0.0.1:6444.
	Listen string
	// Server is the address (host:port) the agent was told, tried first.
	Server string
	// StateFile keeps the servers learnt, across restarts.
	StateFile string
	// Clients reach the API through this load balancer; they read the
	// `kubernetes` endpoints.
	Clients *kubeclient.Shared
}

// LB is the load balancer component.
type LB struct {
	lifecycle.Goroutine
	cfg   Config
	ready chan struct{}
	addr  string // where it listens, once started

	mu      sync.Mutex
	servers []string // in order of preference
	current string
	dead    map[string]bool
	conns   map[string]map[net.Conn]struct{} // by server, to close them when it dies
}

var _ lifecycle.Component = (*LB)(nil)

// New returns the component; nothing runs until Start.
func New(cfg Config) *LB {
	return &LB{cfg: cfg, ready: make(chan struct{}), dead: map[string]bool{}, conns: map[string]map[net.Conn]struct{}{}}
}

func (lb *LB) Name() string { return "apiserver-loadbalancer" }

// URL is the https URL clients use.
func (lb *LB) URL() string { return "https://" + lb.cfg.Listen }

// Addr is the address it listens on, once started.
func (lb *LB) Addr() string { return lb.addr }

func (lb *LB) Init(ctx context.Context) error {
	if _, _, err := net.SplitHostPort(lb.cfg.Listen); err != nil {
		return fmt.Errorf("load balancer address %q: %v", lb.cfg.Listen, err)
	}
	if _, _, err := net.SplitHostPort(lb.cfg.Server); err != nil {
		return fmt.Errorf("server address %q: %v", lb.cfg.Server, err)
	}
	return nil
}

// Servers is the current list, in order of preference.
func (lb *LB) Servers() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return slices.Clone(lb.servers)
}

func (lb *LB) Start(ctx context.Context) error {
	lb.servers = []string{lb.cfg.Server}
	if saved, err := readState(lb.cfg.StateFile); err == nil {
		for _, s := range saved {
			if !slices.Contains(lb.servers, s) {
				lb.servers = append(lb.servers, s)
			}
		}
	}
	lb.current = lb.servers[0]
	ln, err := net.Listen("tcp", lb.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", lb.cfg.Listen, err)
	}
	lb.addr = ln.Addr().String()
	klog.FromContext(ctx).Info("Reaching the apiservers through a local load balancer", "listen", lb.cfg.Listen, "servers", lb.servers)
	close(lb.ready)
	lb.Go(ctx, func(ctx context.Context) error {
		go lb.check(ctx)
		go lb.learn(ctx)
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		defer stop()
		for {
			conn, err := ln.Accept()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("load balancer: %w", err)
			}
			go lb.proxy(ctx, conn)
		}
	})
	return nil
}

func (lb *LB) Ready(ctx context.Context) error { return lb.WaitReady(ctx, lb.ready) }

// order is the servers to try for a new connection: the current one first,
// then the others not known dead, then the dead ones (a check may be stale).
func (lb *LB) order() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	out := []string{lb.current}
	for _, dead := range []bool{false, true} {
		for _, s := range lb.servers {
			if s != lb.current && lb.dead[s] == dead {
				out = append(out, s)
			}
		}
	}
	return out
}

func (lb *LB) proxy(ctx context.Context, client net.Conn) {
	defer client.Close()
	log := klog.FromContext(ctx)
	var upstream net.Conn
	var server string
	for _, s := range lb.order() {
		c, err := net.DialTimeout("tcp", s, dialTimeout)
		if err == nil {
			upstream, server = c, s
			break
		}
		lb.markDead(log, s, err)
	}
	if upstream == nil {
		return
	}
	defer upstream.Close()
	lb.use(log, server)
	lb.track(server, upstream, true)
	defer lb.track(server, upstream, false)
	done := make(chan struct{}, 2)
	go func() { io.Copy(upstream, client); done <- struct{}{} }()
	go func() { io.Copy(client, upstream); done <- struct{}{} }()
	<-done
}

func (lb *LB) track(server string, c net.Conn, add bool) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if add {
		if lb.conns[server] == nil {
			lb.conns[server] = map[net.Conn]struct{}{}
		}
		lb.conns[server][c] = struct{}{}
	} else {
		delete(lb.conns[server], c)
	}
}

// use makes server the current one, logging a change.
func (lb *LB) use(log klog.Logger, server string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	delete(lb.dead, server)
	if lb.current != server {
		log.Info("Load balancer now uses another apiserver", "from", lb.current, "to", server)
		lb.current = server
	}
}

// markDead records that server does not answer and closes the connections
// through it, so their clients reconnect through another.
func (lb *LB) markDead(log klog.Logger, server string, err error) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if !lb.dead[server] {
		log.Info("An apiserver does not answer", "server", server, "err", err.Error())
	}
	lb.dead[server] = true
	for c := range lb.conns[server] {
		c.Close()
	}
}

// check dials every server now and then, so a dead current server is left
// before a client notices, and a revived one is known alive again.
func (lb *LB) check(ctx context.Context) {
	log := klog.FromContext(ctx)
	ticker := time.NewTicker(checkEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		for _, s := range lb.Servers() {
			c, err := net.DialTimeout("tcp", s, dialTimeout)
			if err != nil {
				lb.markDead(log, s, err)
				continue
			}
			c.Close()
			lb.mu.Lock()
			if lb.dead[s] {
				log.Info("An apiserver answers again", "server", s)
				delete(lb.dead, s)
			}
			lb.mu.Unlock()
		}
		lb.mu.Lock()
		if lb.dead[lb.current] {
			for _, s := range lb.servers {
				if !lb.dead[s] {
					log.Info("Load balancer now uses another apiserver", "from", lb.current, "to", s)
					lb.current = s
					break
				}
			}
		}
		lb.mu.Unlock()
	}
}

// learn reads the apiservers' addresses from the `kubernetes` endpoints and
// saves them; the server given on the command line stays first.
func (lb *LB) learn(ctx context.Context) {
	log := klog.FromContext(ctx)
	for {
		if servers, err := lb.fetch(ctx); err != nil {
			log.V(1).Info("Reading the apiservers' addresses failed; retrying", "err", err.Error())
		} else if len(servers) > 0 {
			next := []string{lb.cfg.Server}
			for _, s := range servers {
				if !slices.Contains(next, s) {
					next = append(next, s)
				}
			}
			if !slices.Equal(next, lb.Servers()) {
				log.Info("Apiservers known to the load balancer", "servers", servers)
				// Saved first: a list in use is one a restart finds.
				if err := writeState(lb.cfg.StateFile, servers); err != nil {
					log.Error(err, "Saving the apiservers' addresses", "file", lb.cfg.StateFile)
				}
				lb.mu.Lock()
				lb.servers = next
				if !slices.Contains(next, lb.current) {
					lb.current = next[0]
				}
				lb.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(learnEvery):
		}
	}
}

func (lb *LB) fetch(ctx context.Context) ([]string, error) {
	client, err := lb.cfg.Clients.Client()
	if err != nil {
		return nil, err
	}
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(callCtx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=kubernetes",
	})
	if err != nil {
		return nil, err
	}
	return Addresses(list.Items), nil
}

// Addresses are the host:port of every ready endpoint, sorted.
func Addresses(slicesList []discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range slicesList {
		for _, p := range s.Ports {
			if p.Port == nil {
				continue
			}
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && !*e.Conditions.Ready {
					continue
				}
				for _, a := range e.Addresses {
					hp := net.JoinHostPort(a, strconv.Itoa(int(*p.Port)))
					if !slices.Contains(out, hp) {
						out = append(out, hp)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func readState(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var servers []string
	if err := json.Unmarshal(data, &servers); err != nil {
		return nil, err
	}
	if len(servers) == 0 {
		return nil, errors.New("no servers")
	}
	return servers, nil
}

func writeState(path string, servers []string) error {
	data, err := json.Marshal(servers)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
