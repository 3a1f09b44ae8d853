package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	corelisters "k8s.io/client-go/listers/core/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

const (
	group   = "metrics.k8s.io"
	version = "v1beta1"
	prefix  = "/apis/" + group + "/" + version
)

// api serves metrics.k8s.io/v1beta1 to the apiserver's aggregator.
type api struct {
	store *store
	nodes corelisters.NodeLister
	pods  corelisters.PodLister
	// authn accepts the aggregator's request headers (see newAuthenticator).
	authn authenticator.Request
	// authz asks the apiserver, with a cache (see newAuthorizer).
	authz authorizer.Authorizer
}

// openAPI are the metrics API's OpenAPI documents: v2, v3's discovery and
// its one group-version.
var openAPI = map[string]string{
	"/openapi/v2": `{"swagger":"2.0","info":{"title":"hw metrics","version":"` + version + `"},"paths":{}}`,
	"/openapi/v3": `{"paths":{"apis/` + group + `/` + version + `":{"serverRelativeURL":"/openapi/v3/apis/` + group + `/` + version + `?hash=hw-metrics-1"}}}`,
	"/openapi/v3/apis/" + group + "/" + version: `{"openapi":"3.0.0","info":{"title":"hw metrics","version":"` + version + `"},"paths":{}}`,
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// An error (a certificate from another CA or with a CN not allowed)
	// is refused like a missing certificate.
	resp, ok, err := a.authn.AuthenticateRequest(r)
	if err != nil || !ok {
		writeStatus(w, http.StatusUnauthorized, "Unauthorized", "a client certificate from the apiserver's aggregator is required")
		return
	}
	if r.Method != http.MethodGet {
		writeStatus(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "metrics are read-only")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch path {
	case "/apis":
		writeJSON(w, metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{apiGroup()}})
		return
	case "/apis/" + group:
		g := apiGroup()
		g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
		writeJSON(w, g)
		return
	case prefix:
		writeJSON(w, resourceList())
		return
	case "/healthz", "/readyz", "/livez":
		fmt.Fprint(w, "ok")
		return
	case "/openapi/v2", "/openapi/v3", "/openapi/v3/apis/" + group + "/" + version:
		// The aggregator downloads every API's OpenAPI documents, and logs
		// an error each minute for one without them. These say nothing
		// about the paths: metrics are not something to explain or apply.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"hw-metrics-1"`)
		fmt.Fprint(w, openAPI[path])
		return
	}
	rest, ok := strings.CutPrefix(path, prefix+"/")
	if !ok {
		writeStatus(w, http.StatusNotFound, "NotFound", "no such path")
		return
	}
	parts := strings.Split(rest, "/")
	var namespace, res, name string
	switch {
	case len(parts) <= 2 && (parts[0] == "nodes" || parts[0] == "pods"):
		res = parts[0]
		if len(parts) == 2 {
			name = parts[1]
		}
	case len(parts) >= 3 && len(parts) <= 4 && parts[0] == "namespaces" && parts[2] == "pods":
		namespace, res = parts[1], "pods"
		if len(parts) == 4 {
			name = parts[3]
		}
	default:
		writeStatus(w, http.StatusNotFound, "NotFound", "no such resource")
		return
	}
	verb := "list"
	if name != "" {
		verb = "get"
	}
	decision, _, err := a.authz.Authorize(r.Context(), authorizer.AttributesRecord{
		User: resp.User, Verb: verb, Namespace: namespace, APIGroup: group, APIVersion: version,
		Resource: res, Name: name, ResourceRequest: true,
	})
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, "InternalError", fmt.Sprintf("asking the apiserver whether %q may read metrics: %v", resp.User.GetName(), err))
		return
	}
	// Only an explicit allow lets the request through: a deny or no opinion is refused.
	if decision != authorizer.DecisionAllow {
		writeStatus(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("user %q cannot %s %s.%s", resp.User.GetName(), verb, res, group))
		return
	}
	selector, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", "labelSelector: "+err.Error())
		return
	}
	if res == "nodes" {
		a.serveNodes(w, name, selector)
		return
	}
	a.servePods(w, namespace, name, selector)
}

func apiGroup() metav1.APIGroup {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: group + "/" + version, Version: version}
	return metav1.APIGroup{Name: group, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}
}

func resourceList() metav1.APIResourceList {
	verbs := metav1.Verbs{"get", "list"}
	return metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: group + "/" + version,
		APIResources: []metav1.APIResource{
			{Name: "nodes", Kind: "NodeMetrics", Verbs: verbs},
			{Name: "pods", Kind: "PodMetrics", Namespaced: true, Verbs: verbs},
		},
	}
}

func (a *api) serveNodes(w http.ResponseWriter, name string, selector labels.Selector) {
	var nodes []*corev1.Node
	if name != "" {
		n, err := a.nodes.Get(name)
		if err != nil {
			writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf("nodemetrics %q not found", name))
			return
		}
		nodes = []*corev1.Node{n}
	} else {
		nodes, _ = a.nodes.List(selector)
	}
	list := metricsv1beta1.NodeMetricsList{TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: group + "/" + version}, Items: []metricsv1beta1.NodeMetrics{}}
	for _, n := range nodes {
		u, ok := a.store.nodeUsage(n.Name)
		if !ok {
			continue
		}
		list.Items = append(list.Items, metricsv1beta1.NodeMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: metav1.Now()},
			Timestamp:  metav1.NewTime(u.at),
			Window:     metav1.Duration{Duration: u.window},
			Usage:      resources(u),
		})
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	if name != "" {
		writeOne(w, "NodeMetrics", name, list.Items, func(m *metricsv1beta1.NodeMetrics) *metav1.TypeMeta { return &m.TypeMeta })
		return
	}
	writeJSON(w, list)
}

func (a *api) servePods(w http.ResponseWriter, namespace, name string, selector labels.Selector) {
	var pods []*corev1.Pod
	switch {
	case name != "":
		p, err := a.pods.Pods(namespace).Get(name)
		if err != nil {
			writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf("podmetrics %q not found", name))
			return
		}
		pods = []*corev1.Pod{p}
	case namespace != "":
		pods, _ = a.pods.Pods(namespace).List(selector)
	default:
		pods, _ = a.pods.List(selector)
	}
	list := metricsv1beta1.PodMetricsList{TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: group + "/" + version}, Items: []metricsv1beta1.PodMetrics{}}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		containers, ok := a.store.podUsage(podKey{p.Namespace, p.Name})
		if !ok {
			continue
		}
		sort.Slice(containers, func(i, j int) bool { return containers[i].name < containers[j].name })
		pm := metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, CreationTimestamp: metav1.Now()},
			Timestamp:  metav1.NewTime(containers[0].at),
			Window:     metav1.Duration{Duration: containers[0].window},
		}
		for _, c := range containers {
			pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: c.name, Usage: resources(c.usage)})
		}
		list.Items = append(list.Items, pm)
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	if name != "" {
		writeOne(w, "PodMetrics", name, list.Items, func(m *metricsv1beta1.PodMetrics) *metav1.TypeMeta { return &m.TypeMeta })
		return
	}
	writeJSON(w, list)
}

// writeOne answers a get of one named object: the single item of items, or
// NotFound when it has no readings yet.
func writeOne[T any](w http.ResponseWriter, kind, name string, items []T, meta func(*T) *metav1.TypeMeta) {
	if len(items) == 0 {
		writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf("%s %q not found: no readings yet", strings.ToLower(kind), name))
		return
	}
	item := items[0]
	*meta(&item) = metav1.TypeMeta{Kind: kind, APIVersion: group + "/" + version}
	writeJSON(w, item)
}

func resources(u usage) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewScaledQuantity(u.nanoCores, resource.Nano),
		corev1.ResourceMemory: *resource.NewQuantity(u.memory, resource.BinarySI),
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeStatus(w http.ResponseWriter, code int, reason, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: message, Reason: metav1.StatusReason(reason), Code: int32(code),
	})
}
