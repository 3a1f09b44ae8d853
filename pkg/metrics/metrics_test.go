package metrics

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// scrape is /metrics/resource as a kubelet writes it, at time ts (ms).
func scrape(nodeCPU, containerCPU, ts string) string {
	return `# HELP node_cpu_usage_seconds_total x
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total ` + nodeCPU + ` ` + ts + `
# HELP node_memory_working_set_bytes x
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.073741824e+09 ` + ts + `
# HELP container_cpu_usage_seconds_total x
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="web",pod="web-1"} ` + containerCPU + ` ` + ts + `
# HELP container_memory_working_set_bytes x
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="web",pod="web-1"} 2.097152e+07 ` + ts + `
`
}

func fill(t *testing.T) *store {
	s := newStore()
	for _, text := range []string{scrape("100", "10", "1000000"), scrape("100", "10", "1000000"), scrape("105", "10.5", "1010000")} {
		families, err := parse(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		s.update("n1", families)
	}
	return s
}

func TestRates(t *testing.T) {
	s := fill(t)
	u, ok := s.nodeUsage("n1")
	// 5 CPU-seconds over 10 s: 0.5 cores.
	if !ok || u.nanoCores != 500_000_000 || u.memory != 1<<30 || u.window.Seconds() != 10 {
		t.Errorf("node usage %+v %v; want 0.5 cores, 1 GiB over 10 s (a repeated reading is not a new one)", u, ok)
	}
	c, ok := s.podUsage(podKey{"web", "web-1"})
	if !ok || len(c) != 1 || c[0].name != "app" || c[0].nanoCores != 50_000_000 || c[0].memory != 20<<20 {
		t.Errorf("pod usage %+v %v; want app at 50m, 20 MiB", c, ok)
	}
	families, _ := parse(strings.NewReader(scrape("106", "0", "1020000")))
	delete(families, containerCPU)
	delete(families, containerMemory)
	s.update("n1", families)
	if _, ok := s.podUsage(podKey{"web", "web-1"}); ok {
		t.Error("a pod the kubelet no longer reports still has metrics")
	}
}

func TestAPI(t *testing.T) {
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}}})
	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	pods.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "web", Labels: map[string]string{"app": "web"}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}})
	client := fake.NewClientset()
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		sar.Status.Allowed = sar.Spec.User == "alice"
		return true, sar, nil
	})
	handler := &api{store: fill(t), nodes: corelisters.NewNodeLister(nodes), pods: corelisters.NewPodLister(pods),
		authz: &authorizer{client: client, cache: map[string]cachedDecision{}}}

	get := func(path, user string, proxied bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if proxied {
			req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
			req.Header.Set("X-Remote-User", user)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec
	}
	if rec := get(prefix+"/nodes", "alice", false); rec.Code != http.StatusUnauthorized {
		t.Errorf("without the aggregator's certificate: %d", rec.Code)
	}
	if rec := get(prefix+"/nodes", "bob", true); rec.Code != http.StatusForbidden {
		t.Errorf("bob may not read metrics: %d", rec.Code)
	}
	rec := get(prefix+"/nodes?labelSelector=zone%3Da", "alice", true)
	var nl metricsv1beta1.NodeMetricsList
	if err := json.Unmarshal(rec.Body.Bytes(), &nl); err != nil || len(nl.Items) != 1 || nl.Items[0].Usage.Cpu().MilliValue() != 500 {
		t.Errorf("nodes: %d %s", rec.Code, rec.Body)
	}
	rec = get(prefix+"/namespaces/web/pods?labelSelector=app%3Dweb", "alice", true)
	var pl metricsv1beta1.PodMetricsList
	if err := json.Unmarshal(rec.Body.Bytes(), &pl); err != nil || len(pl.Items) != 1 || pl.Items[0].Containers[0].Usage.Cpu().MilliValue() != 50 {
		t.Errorf("pods: %d %s", rec.Code, rec.Body)
	}
	if rec := get(prefix+"/namespaces/web/pods?labelSelector=app%3Dother", "alice", true); !strings.Contains(rec.Body.String(), `"items":[]`) {
		t.Errorf("selector matching nothing: %s", rec.Body)
	}
	var one metricsv1beta1.NodeMetrics
	if rec := get(prefix+"/nodes/n1", "alice", true); json.Unmarshal(rec.Body.Bytes(), &one) != nil || one.Kind != "NodeMetrics" || one.Name != "n1" {
		t.Errorf("one node: %d %s", rec.Code, rec.Body)
	}
	var onePod metricsv1beta1.PodMetrics
	if rec := get(prefix+"/namespaces/web/pods/web-1", "alice", true); json.Unmarshal(rec.Body.Bytes(), &onePod) != nil || onePod.Kind != "PodMetrics" || len(onePod.Containers) != 1 {
		t.Errorf("one pod: %d %s", rec.Code, rec.Body)
	}
	if rec := get(prefix+"/namespaces/web/pods/gone", "alice", true); rec.Code != http.StatusNotFound {
		t.Errorf("unknown pod: %d", rec.Code)
	}
	if rec := get(prefix, "", true); !strings.Contains(rec.Body.String(), `"PodMetrics"`) {
		t.Errorf("discovery: %s", rec.Body)
	}
}
