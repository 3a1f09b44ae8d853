package metrics

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
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

// testAPI is the handler with node n1 and pod web/web-1 (see fill), trusting
// the aggregator's certificates from ca and reviewing access with client.
func testAPI(t *testing.T, ca *testCA, client kubernetes.Interface) *api {
	t.Helper()
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}}})
	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	pods.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "web", Labels: map[string]string{"app": "web"}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}})
	authn, err := newAuthenticator(ca.pem)
	if err != nil {
		t.Fatal(err)
	}
	authz, err := newAuthorizer(client)
	if err != nil {
		t.Fatal(err)
	}
	return &api{store: fill(t), nodes: corelisters.NewNodeLister(nodes), pods: corelisters.NewPodLister(pods), authn: authn, authz: authz}
}

// reviews stands in for the kube-apiserver's SubjectAccessReview endpoint:
// it answers POST /apis/authorization.k8s.io/v1/subjectaccessreviews with
// decide, and records the reviews it was asked. An error from decide that
// carries an API status (apierrors) is answered with that Status and code.
// The handler only lists nodes and pods from its own stores (see testAPI),
// so nothing else of the apiserver is served: any other request fails the
// test.
type reviews struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	asked  []authorizationv1.SubjectAccessReviewSpec
	decide func(spec authorizationv1.SubjectAccessReviewSpec, calls int) (allowed bool, err error)
}

const reviewPath = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

func newReviews(t *testing.T, decide func(spec authorizationv1.SubjectAccessReviewSpec, calls int) (bool, error)) *reviews {
	t.Helper()
	r := &reviews{t: t, decide: decide}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *reviews) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != reviewPath {
		r.t.Errorf("unexpected request to the apiserver: %s %s", req.Method, req.URL)
		writeStatus(w, http.StatusNotFound, string(metav1.StatusReasonNotFound), "not served by this test")
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("review posted as %q", ct)
	}
	var sar authorizationv1.SubjectAccessReview
	if err := json.NewDecoder(req.Body).Decode(&sar); err != nil {
		r.t.Errorf("review body: %v", err)
		writeStatus(w, http.StatusBadRequest, string(metav1.StatusReasonBadRequest), err.Error())
		return
	}
	r.mu.Lock()
	r.asked = append(r.asked, sar.Spec)
	calls := len(r.asked)
	r.mu.Unlock()
	allowed, err := r.decide(sar.Spec, calls)
	if err != nil {
		var status apierrors.APIStatus
		if !errors.As(err, &status) {
			r.t.Errorf("decide: %v is not an API status", err)
			writeStatus(w, http.StatusInternalServerError, string(metav1.StatusReasonInternalError), err.Error())
			return
		}
		st := status.Status()
		st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(st.Code))
		json.NewEncoder(w).Encode(st)
		return
	}
	sar.TypeMeta = metav1.TypeMeta{Kind: "SubjectAccessReview", APIVersion: authorizationv1.SchemeGroupVersion.String()}
	sar.Status.Allowed = allowed
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(&sar)
}

// client is a real clientset for the stand-in apiserver.
func (r *reviews) client() kubernetes.Interface {
	r.t.Helper()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: r.srv.URL})
	if err != nil {
		r.t.Fatal(err)
	}
	return client
}

func (r *reviews) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.asked)
}

// last is the review asked last (empty if none was).
func (r *reviews) last() authorizationv1.SubjectAccessReviewSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.asked) == 0 {
		return authorizationv1.SubjectAccessReviewSpec{}
	}
	return r.asked[len(r.asked)-1]
}

// reset forgets the reviews asked so far (calls count from 1 again).
func (r *reviews) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = nil
}

// onlyAlice allows alice and nobody else.
func onlyAlice(spec authorizationv1.SubjectAccessReviewSpec, _ int) (bool, error) {
	return spec.User == "alice", nil
}

// The fake clientset has no REST client to post reviews with: newAuthorizer
// refuses it rather than panicking on the first request.
func TestAuthorizerNeedsRESTClient(t *testing.T) {
	if _, err := newAuthorizer(fake.NewClientset()); err == nil {
		t.Fatal("newAuthorizer accepted a clientset without a REST client")
	}
}

func TestAPI(t *testing.T) {
	ca := newTestCA(t)
	proxy := ca.issue(t, "system:auth-proxy", x509.ExtKeyUsageClientAuth)
	handler := testAPI(t, ca, newReviews(t, onlyAlice).client())

	get := func(path, user string, proxied bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if proxied {
			req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{proxy.Leaf}}
			req.Header.Set("X-Remote-User", user)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec
	}
	// The aggregator finds OpenAPI documents (none: an error each minute).
	for _, path := range []string{"/openapi/v2", "/openapi/v3", "/openapi/v3/apis/metrics.k8s.io/v1beta1"} {
		rec := get(path, "system:kube-aggregator", true)
		var doc map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &doc) != nil || doc["paths"] == nil {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
		}
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
	if rec := get(prefix, "alice", true); !strings.Contains(rec.Body.String(), `"PodMetrics"`) {
		t.Errorf("discovery: %s", rec.Body)
	}
}

// testCA is a CA made in-process, like the request-header CA hw writes.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// issue signs a certificate for cn (valid for 127.0.0.1 too); Leaf is set.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// decodeStatus reads the metav1.Status the handler answers errors with.
func decodeStatus(t *testing.T, rec *httptest.ResponseRecorder) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%d %q is not a Status: %v", rec.Code, rec.Body, err)
	}
	return st
}

// The aggregator's identity headers are trusted only from a certificate of the
// request-header CA whose CN is the apiserver's requestheader-allowed-names.
func TestRequestHeaderAuthentication(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	review := newReviews(t, onlyAlice)
	handler := testAPI(t, ca, review.client())
	proxy := ca.issue(t, "system:auth-proxy", x509.ExtKeyUsageClientAuth)
	for _, tc := range []struct {
		name     string
		cert     *tls.Certificate // nil: no client certificate
		user     string
		wantCode int
	}{
		{"aggregator's certificate", &proxy, "alice", http.StatusOK},
		{"request-header CA, CN other-name", ptr(ca.issue(t, "other-name", x509.ExtKeyUsageClientAuth)), "alice", http.StatusUnauthorized},
		{"no client certificate", nil, "alice", http.StatusUnauthorized},
		{"CN system:auth-proxy from another CA", ptr(otherCA.issue(t, "system:auth-proxy", x509.ExtKeyUsageClientAuth)), "alice", http.StatusUnauthorized},
		{"request-header CA, server certificate", ptr(ca.issue(t, "system:auth-proxy", x509.ExtKeyUsageServerAuth)), "alice", http.StatusUnauthorized},
		{"aggregator's certificate, no user", &proxy, "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, prefix+"/nodes", nil)
			if tc.cert != nil {
				req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tc.cert.Leaf}}
			}
			if tc.user != "" {
				req.Header.Set("X-Remote-User", tc.user)
			}
			req.Header.Add("X-Remote-Group", "devs")
			req.Header.Add("X-Remote-Group", "system:authenticated")
			req.Header.Set("X-Remote-Extra-Scopes", "a")
			before := review.count()
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("code %d %s; want %d", rec.Code, rec.Body, tc.wantCode)
			}
			if tc.wantCode != http.StatusOK {
				if st := decodeStatus(t, rec); st.Reason != metav1.StatusReasonUnauthorized || st.Code != http.StatusUnauthorized {
					t.Errorf("status %+v", st)
				}
				if review.count() != before {
					t.Error("an unauthenticated request was sent for review")
				}
				return
			}
			// The identity from the headers is what gets reviewed.
			want := authorizationv1.SubjectAccessReviewSpec{
				User: "alice", Groups: []string{"devs", "system:authenticated"},
				Extra: map[string]authorizationv1.ExtraValue{"scopes": {"a"}},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Group: group, Version: version, Resource: "nodes", Verb: "list",
				},
			}
			if got := review.last(); !reflect.DeepEqual(got, want) {
				t.Errorf("review %+v; want %+v", got, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// Access is decided by SubjectAccessReviews, cached, and retried when the
// apiserver fails briefly.
func TestAuthorization(t *testing.T) {
	ca := newTestCA(t)
	proxy := ca.issue(t, "system:auth-proxy", x509.ExtKeyUsageClientAuth)
	review := newReviews(t, func(spec authorizationv1.SubjectAccessReviewSpec, calls int) (bool, error) {
		switch spec.User {
		case "broken":
			return false, apierrors.NewForbidden(schema.GroupResource{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, "", errors.New("no"))
		case "flaky":
			if calls == 1 {
				return false, apierrors.NewInternalError(errors.New("etcd is busy"))
			}
			return true, nil
		}
		return spec.User == "alice", nil
	})
	handler := testAPI(t, ca, review.client())
	get := func(path, user string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{proxy.Leaf}}
		req.Header.Set("X-Remote-User", user)
		req.Header.Set("X-Remote-Group", "devs")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec
	}

	if rec := get(prefix+"/namespaces/web/pods/web-1", "alice"); rec.Code != http.StatusOK {
		t.Fatalf("alice: %d %s", rec.Code, rec.Body)
	}
	want := authorizationv1.SubjectAccessReviewSpec{User: "alice", Groups: []string{"devs"}, ResourceAttributes: &authorizationv1.ResourceAttributes{
		Group: group, Version: version, Resource: "pods", Verb: "get", Namespace: "web", Name: "web-1",
	}}
	if got := review.last(); !reflect.DeepEqual(got, want) {
		t.Errorf("review %+v; want %+v", got, want)
	}
	if rec := get(prefix+"/namespaces/web/pods/web-1", "alice"); rec.Code != http.StatusOK || review.count() != 1 {
		t.Errorf("alice again: %d, %d reviews; want the allow cached", rec.Code, review.count())
	}

	rec := get(prefix+"/nodes", "bob")
	if st := decodeStatus(t, rec); rec.Code != http.StatusForbidden || st.Reason != metav1.StatusReasonForbidden || st.Code != http.StatusForbidden {
		t.Errorf("bob: %d %s; want 403", rec.Code, rec.Body)
	}
	if rec := get(prefix+"/nodes", "bob"); rec.Code != http.StatusForbidden || review.count() != 2 {
		t.Errorf("bob again: %d, %d reviews; want the deny cached", rec.Code, review.count())
	}

	if rec := get(prefix+"/nodes", "broken"); rec.Code != http.StatusInternalServerError || decodeStatus(t, rec).Reason != metav1.StatusReasonInternalError {
		t.Errorf("review refused: %d %s; want 500", rec.Code, rec.Body)
	}

	review.reset()
	if rec := get(prefix+"/nodes", "flaky"); rec.Code != http.StatusOK || review.count() != 2 {
		t.Errorf("review failing once: %d %s after %d reviews; want 200 after a retry", rec.Code, rec.Body, review.count())
	}
}

// Over a real TLS connection, with the listener's TLS settings: the
// certificate the client presents is what the authenticator checks.
func TestServeTLS(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	srv := httptest.NewUnstartedServer(testAPI(t, ca, newReviews(t, onlyAlice).client()))
	srv.TLS = servingTLSConfig(ca.issue(t, "metrics-server", x509.ExtKeyUsageServerAuth), ca.pool())
	srv.StartTLS()
	defer srv.Close()

	get := func(cert *tls.Certificate) (int, error) {
		cfg := &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+prefix+"/nodes", nil)
		req.Header.Set("X-Remote-User", "alice")
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(ptr(ca.issue(t, "system:auth-proxy", x509.ExtKeyUsageClientAuth))); code != http.StatusOK {
		t.Errorf("aggregator: %d %v", code, err)
	}
	if code, err := get(ptr(ca.issue(t, "other-name", x509.ExtKeyUsageClientAuth))); code != http.StatusUnauthorized {
		t.Errorf("CN other-name: %d %v; want 401", code, err)
	}
	if code, err := get(nil); code != http.StatusUnauthorized {
		t.Errorf("no client certificate: %d %v; want 401", code, err)
	}
	// The handshake itself refuses a certificate from another CA.
	if code, err := get(ptr(otherCA.issue(t, "system:auth-proxy", x509.ExtKeyUsageClientAuth))); err == nil {
		t.Errorf("another CA: %d; want the handshake to fail", code)
	}
}
