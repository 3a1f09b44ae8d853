package metrics

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
)

// sample is one cumulative CPU reading and one memory reading at a time.
type sample struct {
	cpuSeconds float64
	memory     float64
	at         time.Time
}

// series keeps the last two distinct readings: a rate needs two.
type series struct{ prev, cur sample }

func (s *series) add(v sample) {
	if !v.at.After(s.cur.at) {
		return // the kubelet had no newer stats
	}
	s.prev, s.cur = s.cur, v
}

// usage is a rate over the window between the two readings.
type usage struct {
	nanoCores int64
	memory    int64
	at        time.Time
	window    time.Duration
}

func (s *series) usage() (usage, bool) {
	if s.prev.at.IsZero() || s.cur.cpuSeconds < s.prev.cpuSeconds {
		return usage{}, false
	}
	window := s.cur.at.Sub(s.prev.at)
	rate := (s.cur.cpuSeconds - s.prev.cpuSeconds) / window.Seconds()
	return usage{nanoCores: int64(rate * 1e9), memory: int64(s.cur.memory), at: s.cur.at, window: window}, true
}

// podKey is namespace/name.
type podKey struct{ namespace, name string }

// nodeStats is what one kubelet reported.
type nodeStats struct {
	node series
	// containers by pod, then container name.
	containers map[podKey]map[string]*series
}

// store holds every node's readings.
type store struct {
	mu    sync.RWMutex
	nodes map[string]*nodeStats
}

func newStore() *store { return &store{nodes: map[string]*nodeStats{}} }

// resourceMetrics are the kubelet's /metrics/resource series hw reads.
const (
	nodeCPU         = "node_cpu_usage_seconds_total"
	nodeMemory      = "node_memory_working_set_bytes"
	containerCPU    = "container_cpu_usage_seconds_total"
	containerMemory = "container_memory_working_set_bytes"
)

// update records a parsed scrape of node's kubelet. Containers the kubelet
// no longer reports are forgotten.
func (s *store) update(node string, families map[string]*dto.MetricFamily) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.nodes[node]
	if ns == nil {
		ns = &nodeStats{containers: map[podKey]map[string]*series{}}
		s.nodes[node] = ns
	}
	if cpu, mem, at, ok := nodeReading(families); ok {
		ns.node.add(sample{cpuSeconds: cpu, memory: mem, at: at})
	}
	type ckey struct {
		pod       podKey
		container string
	}
	readings := map[ckey]*sample{}
	read := func(family string, set func(*sample, float64)) {
		f := families[family]
		if f == nil {
			return
		}
		for _, m := range f.Metric {
			l := labelsOf(m)
			k := ckey{podKey{l["namespace"], l["pod"]}, l["container"]}
			if k.container == "" || k.pod.name == "" {
				continue
			}
			r := readings[k]
			if r == nil {
				r = &sample{}
				readings[k] = r
			}
			set(r, value(m))
			if at := timestamp(m); at.After(r.at) {
				r.at = at
			}
		}
	}
	read(containerCPU, func(r *sample, v float64) { r.cpuSeconds = v })
	read(containerMemory, func(r *sample, v float64) { r.memory = v })
	seen := map[podKey]map[string]bool{}
	for k, r := range readings {
		pod := ns.containers[k.pod]
		if pod == nil {
			pod = map[string]*series{}
			ns.containers[k.pod] = pod
		}
		sr := pod[k.container]
		if sr == nil {
			sr = &series{}
			pod[k.container] = sr
		}
		sr.add(*r)
		if seen[k.pod] == nil {
			seen[k.pod] = map[string]bool{}
		}
		seen[k.pod][k.container] = true
	}
	for pod, containers := range ns.containers {
		for c := range containers {
			if !seen[pod][c] {
				delete(containers, c)
			}
		}
		if len(containers) == 0 {
			delete(ns.containers, pod)
		}
	}
}

// forget drops nodes no longer in the cluster.
func (s *store) forget(keep map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.nodes {
		if !keep[n] {
			delete(s.nodes, n)
		}
	}
}

func (s *store) nodeUsage(node string) (usage, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ns := s.nodes[node]
	if ns == nil {
		return usage{}, false
	}
	return ns.node.usage()
}

// containerUsage is one container's usage in a pod.
type containerUsage struct {
	name string
	usage
}

// podUsage returns the usage of each container of a pod, found on any node;
// false unless every container has a rate.
func (s *store) podUsage(pod podKey) ([]containerUsage, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, ns := range s.nodes {
		containers, ok := ns.containers[pod]
		if !ok {
			continue
		}
		var out []containerUsage
		for name, sr := range containers {
			u, ok := sr.usage()
			if !ok {
				return nil, false
			}
			out = append(out, containerUsage{name, u})
		}
		return out, len(out) > 0
	}
	return nil, false
}

func nodeReading(families map[string]*dto.MetricFamily) (cpu, mem float64, at time.Time, ok bool) {
	c, m := families[nodeCPU], families[nodeMemory]
	if c == nil || m == nil || len(c.Metric) == 0 || len(m.Metric) == 0 {
		return 0, 0, time.Time{}, false
	}
	return value(c.Metric[0]), value(m.Metric[0]), timestamp(c.Metric[0]), true
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func timestamp(m *dto.Metric) time.Time {
	if m.TimestampMs == nil {
		return time.Time{}
	}
	return time.UnixMilli(m.GetTimestampMs())
}

// parse reads a Prometheus text exposition.
func parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// kubeletScraper fetches /metrics/resource from kubelets with the
// apiserver's kubelet client certificate.
type kubeletScraper struct {
	client *http.Client
}

func newKubeletScraper(tlsConfig *tls.Config) *kubeletScraper {
	return &kubeletScraper{client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig, MaxIdleConnsPerHost: 1},
	}}
}

func (k *kubeletScraper) scrape(ctx context.Context, node *corev1.Node) (map[string]*dto.MetricFamily, error) {
	addr := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			addr = a.Address
			break
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("node %s has no InternalIP", node.Name)
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = 10250
	}
	url := "https://" + net.JoinHostPort(addr, strconv.Itoa(port)) + "/metrics/resource"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	return parse(resp.Body)
}
