// Package deploy is hw's auto-deploy controller: every manifest in the
// server's manifests folder (<data-dir>/server/manifests) is applied with
// server-side apply, one field manager per file, when hw starts and whenever
// the file changes. Objects that leave a file, or whose file is deleted, are
// deleted. FILE.skip beside FILE makes hw leave FILE and its objects alone.
// The state of each file is a cluster-scoped Manifest object (hw.io/v1),
// with Events on it: `kubectl get manifests`.
package deploy

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// The Manifest status objects.
var manifestGVR = schema.GroupVersionResource{Group: "hw.io", Version: "v1", Resource: "manifests"}

const (
	StateApplied = "Applied"
	StateFailed  = "Failed"
	StateSkipped = "Skipped"

	// fieldManagerPrefix + the Manifest's name is the field manager of a
	// file's objects (at most 128 characters).
	fieldManagerPrefix = "hw-manifest:"
	// resync re-reads the folder even without a change event: retries
	// failures (a CRD that was not yet established) and catches what
	// inotify missed (a folder on a network filesystem).
	resync = 30 * time.Second
	// settle lets a burst of writes to one file end before it is read.
	settle = 500 * time.Millisecond
)

//go:embed crd.yaml
var crdYAML []byte

// Config is what the controller needs.
type Config struct {
	// Dir is the folder of manifests.
	Dir string
	// Clients reach the apiserver with the rights to apply anything (the
	// admin's).
	Clients *kubeclient.Shared
}

// Controller is the auto-deploy component.
type Controller struct {
	lifecycle.Goroutine
	cfg        Config
	dyn        dynamic.Interface
	mapper     *restmapper.DeferredDiscoveryRESTMapper
	recorder   record.EventRecorder
	stopEvents func()
	// firstPass is closed when every file was tried once.
	firstPass chan struct{}
	// applied holds the checksum each file was last applied with by this
	// process: hw re-applies every file once per start, then on change.
	applied map[string]string
}

var _ lifecycle.Component = (*Controller)(nil)

// New returns the controller; nothing runs until Start.
func New(cfg Config) *Controller {
	return &Controller{cfg: cfg, firstPass: make(chan struct{}), applied: map[string]string{}}
}

func (c *Controller) Name() string { return "manifests" }

// Init checks the manifests folder is an absolute path.
func (c *Controller) Init(ctx context.Context) error {
	if !filepath.IsAbs(c.cfg.Dir) {
		return fmt.Errorf("manifests folder %q is not an absolute path", c.cfg.Dir)
	}
	return nil
}

func (c *Controller) Start(ctx context.Context) error {
	if err := os.MkdirAll(c.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("manifests folder %s: %w", c.cfg.Dir, err)
	}
	rc, err := c.cfg.Clients.RESTConfig()
	if err != nil {
		return err
	}
	client, err := c.cfg.Clients.Client()
	if err != nil {
		return err
	}
	if c.dyn, err = dynamic.NewForConfig(rc); err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return err
	}
	c.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	c.recorder, c.stopEvents = kubeclient.EventRecorder(ctx, client, corev1.EventSource{Component: "hw-manifests"})
	c.Go(ctx, c.run)
	return nil
}

// Ready returns once every file in the folder was applied or failed once.
func (c *Controller) Ready(ctx context.Context) error { return c.WaitReady(ctx, c.firstPass) }

func (c *Controller) run(ctx context.Context) error {
	defer c.stopEvents()
	log := klog.FromContext(ctx).WithName("manifests")
	ctx = klog.NewContext(ctx, log)
	if err := c.ensureCRD(ctx); err != nil {
		return err
	}
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", c.cfg.Dir, err)
	}
	defer watcher.Close()
	if err := watcher.Add(c.cfg.Dir); err != nil {
		return fmt.Errorf("watching %s: %w", c.cfg.Dir, err)
	}
	c.syncAll(ctx)
	close(c.firstPass)

	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	var settleTimer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-watcher.Events:
			log.V(2).Info("Folder changed", "event", ev.String())
			if settleTimer == nil {
				settleTimer = time.After(settle)
			}
		case err := <-watcher.Errors:
			log.Error(err, "Watching the manifests folder; relying on the periodic re-read", "dir", c.cfg.Dir)
		case <-settleTimer:
			settleTimer = nil
			c.syncAll(ctx)
		case <-ticker.C:
			c.syncAll(ctx)
		}
	}
}

// ensureCRD installs the Manifest type and waits until it is served.
func (c *Controller) ensureCRD(ctx context.Context) error {
	objs, err := Parse(crdYAML)
	if err != nil {
		return err
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	crd := objs[0]
	var last error
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := c.dyn.Resource(crdGVR).Apply(ctx, crd.GetName(), crd, metav1.ApplyOptions{FieldManager: "hw", Force: true})
		if err != nil {
			last = err
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				c.mapper.Reset()
				return true, nil
			}
		}
		last = fmt.Errorf("CustomResourceDefinition %s not established yet", crd.GetName())
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("installing the Manifest type: %w (last: %v)", err, last)
	}
	return nil
}

// syncAll applies every changed file and removes what deleted files made.
func (c *Controller) syncAll(ctx context.Context) {
	log := klog.FromContext(ctx)
	entries, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		log.Error(err, "Reading the manifests folder", "dir", c.cfg.Dir)
		return
	}
	present := map[string]bool{}
	var failed []string
	for _, e := range entries {
		if e.IsDir() || !isManifest(e.Name()) {
			continue
		}
		file := filepath.Join(c.cfg.Dir, e.Name())
		present[ManifestName(file)] = true
		if !c.syncFile(ctx, file) {
			failed = append(failed, file)
		}
	}
	// One more try for files that failed while others applied: a file may
	// need a namespace or a CRD from a file later in the folder.
	if len(failed) > 0 && len(failed) < len(present) {
		for _, file := range failed {
			c.syncFile(ctx, file)
		}
	}
	if ctx.Err() != nil {
		return
	}
	list, err := c.dyn.Resource(manifestGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		if ctx.Err() == nil {
			log.Error(err, "Listing Manifest objects")
		}
		return
	}
	for i := range list.Items {
		m := &list.Items[i]
		file, _, _ := unstructured.NestedString(m.Object, "spec", "file")
		if present[m.GetName()] || filepath.Dir(file) != c.cfg.Dir {
			continue
		}
		c.removeFile(ctx, m, file)
	}
}

// syncFile applies one file if it changed since this process last applied
// it. It returns false when applying failed.
func (c *Controller) syncFile(ctx context.Context, file string) bool {
	log := klog.FromContext(ctx).WithValues("file", file)
	name := ManifestName(file)
	data, err := os.ReadFile(file)
	if err != nil {
		log.Error(err, "Reading a manifest")
		return false
	}
	sum := checksum(data)
	if _, err := os.Stat(file + SkipSuffix); err == nil {
		if c.applied[name] != "skip" {
			log.Info("Leaving a manifest alone: a .skip file is beside it", "skip", file+SkipSuffix)
			c.setStatus(ctx, name, file, status{State: StateSkipped, Message: "skipped: " + filepath.Base(file) + SkipSuffix + " exists; its objects are left as they are"}, nil, corev1.EventTypeNormal, "Skipped")
			c.applied[name] = "skip"
		}
		return true
	}
	if c.applied[name] == sum {
		return true
	}
	prev, err := c.dyn.Resource(manifestGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		log.Error(err, "Reading a Manifest object", "manifest", name)
		return false
	}
	objs, err := Parse(data)
	if err != nil {
		c.fail(ctx, name, file, prev, fmt.Errorf("%s: %w", filepath.Base(file), err))
		return false
	}
	begin := time.Now()
	var refs []ObjectRef
	for _, obj := range objs {
		ref, err := c.apply(ctx, name, obj)
		if err != nil {
			c.fail(ctx, name, file, prev, err)
			return false
		}
		refs = append(refs, ref)
	}
	// Objects the file no longer holds. Deleted last-created first.
	var gone []ObjectRef
	for _, old := range previousObjects(prev) {
		if !slices.Contains(refs, old) {
			gone = append(gone, old)
		}
	}
	slices.Reverse(gone)
	for _, ref := range gone {
		if err := c.delete(ctx, ref); err != nil {
			c.fail(ctx, name, file, prev, fmt.Errorf("deleting %s, which left %s: %w", ref, filepath.Base(file), err))
			return false
		}
	}
	msg := fmt.Sprintf("applied %d objects", len(refs))
	if len(gone) > 0 {
		msg += fmt.Sprintf(", deleted %d", len(gone))
	}
	log.Info("Applied manifest", "objects", len(refs), "deleted", len(gone), "took", time.Since(begin).Round(time.Millisecond))
	c.setStatus(ctx, name, file, status{State: StateApplied, Message: msg, Checksum: sum, Objects: refs}, prev, corev1.EventTypeNormal, "Applied")
	c.applied[name] = sum
	return true
}

// fail records a failed attempt. The objects of the last good apply stay in
// the status, so a later fix or removal of the file still cleans them up.
// The file is tried again at the next re-read.
func (c *Controller) fail(ctx context.Context, name, file string, prev *unstructured.Unstructured, err error) {
	klog.FromContext(ctx).Error(err, "Applying manifest failed; retrying", "file", file, "retry", resync)
	c.mapper.Reset() // a kind may be served by now (a CRD from this or another file)
	c.setStatus(ctx, name, file, status{State: StateFailed, Message: err.Error(), Objects: previousObjects(prev)}, prev, corev1.EventTypeWarning, "Failed")
	delete(c.applied, name)
}

// apply server-side applies one object with the file's field manager.
func (c *Controller) apply(ctx context.Context, manifest string, obj *unstructured.Unstructured) (ObjectRef, error) {
	gvk := obj.GroupVersionKind()
	mapping, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("%s %q: no such kind in the cluster (yet): %w", gvk.Kind, obj.GetName(), err)
	}
	res := c.dyn.Resource(mapping.Resource)
	var ri dynamic.ResourceInterface = res
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(metav1.NamespaceDefault)
		}
		ri = res.Namespace(obj.GetNamespace())
	} else {
		obj.SetNamespace("")
	}
	if _, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: fieldManager(manifest), Force: true}); err != nil {
		return ObjectRef{}, fmt.Errorf("%s: %w", refOf(obj), err)
	}
	return refOf(obj), nil
}

// delete removes one object; one already gone is fine.
func (c *Controller) delete(ctx context.Context, ref ObjectRef) error {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return err
	}
	mapping, err := c.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: ref.Kind}, gv.Version)
	if meta.IsNoMatchError(err) {
		return nil // its kind is gone, and so is it
	}
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = c.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = c.dyn.Resource(mapping.Resource).Namespace(ref.Namespace)
	}
	policy := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// removeFile deletes what a file that is gone had created, then its
// Manifest object.
func (c *Controller) removeFile(ctx context.Context, m *unstructured.Unstructured, file string) {
	log := klog.FromContext(ctx).WithValues("file", file)
	state, _, _ := unstructured.NestedString(m.Object, "status", "state")
	objs := previousObjects(m)
	if state == StateSkipped {
		// The user took the file over; its objects are theirs now.
		objs = nil
	}
	slices.Reverse(objs)
	for _, ref := range objs {
		if err := c.delete(ctx, ref); err != nil {
			log.Error(err, "Deleting an object of a removed manifest; retrying", "object", ref.String())
			c.recorder.Eventf(m, corev1.EventTypeWarning, "DeleteFailed", "deleting %s: %v", ref, err)
			return
		}
	}
	if err := c.dyn.Resource(manifestGVR).Delete(ctx, m.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		log.Error(err, "Deleting a Manifest object", "manifest", m.GetName())
		return
	}
	delete(c.applied, m.GetName())
	log.Info("Manifest removed: deleted its objects", "objects", len(objs))
}

type status struct {
	State    string      `json:"state"`
	Message  string      `json:"message"`
	Checksum string      `json:"checksum,omitempty"`
	Objects  []ObjectRef `json:"objects"`
}

// setStatus creates or updates the file's Manifest object and records an
// event on it.
func (c *Controller) setStatus(ctx context.Context, name, file string, st status, prev *unstructured.Unstructured, eventType, reason string) {
	log := klog.FromContext(ctx)
	res := c.dyn.Resource(manifestGVR)
	m := prev
	if m == nil {
		var err error
		m, err = res.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			m = &unstructured.Unstructured{}
			m.SetAPIVersion(manifestGVR.GroupVersion().String())
			m.SetKind("Manifest")
			m.SetName(name)
			unstructured.SetNestedField(m.Object, file, "spec", "file")
			// Applied, not created: the apiserver holds every create of a
			// custom resource for 2 s while its type is under 2 s old (for
			// HA apiservers to catch up; hw has one), and on a first boot
			// that held the whole start.
			m, err = res.Apply(ctx, name, m, metav1.ApplyOptions{FieldManager: "hw", Force: true})
		}
		if err != nil {
			log.Error(err, "Recording a manifest's state", "manifest", name)
			return
		}
	}
	objects := make([]any, 0, len(st.Objects))
	for _, r := range st.Objects {
		o, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(&r)
		objects = append(objects, o)
	}
	statusObj := map[string]any{
		"state":       st.State,
		"message":     st.Message,
		"objects":     objects,
		"objectCount": int64(len(st.Objects)),
	}
	if st.State == StateApplied {
		statusObj["checksum"] = st.Checksum
		statusObj["appliedAt"] = time.Now().UTC().Format(time.RFC3339)
	} else if old, ok, _ := unstructured.NestedMap(m.Object, "status"); ok {
		// Keep when and what was last applied.
		for _, k := range []string{"checksum", "appliedAt"} {
			if v, ok := old[k]; ok {
				statusObj[k] = v
			}
		}
	}
	patch := map[string]any{
		"apiVersion": manifestGVR.GroupVersion().String(),
		"kind":       "Manifest",
		"metadata":   map[string]any{"name": name},
		"status":     statusObj,
	}
	data, err := (&unstructured.Unstructured{Object: patch}).MarshalJSON()
	if err != nil {
		log.Error(err, "Recording a manifest's state", "manifest", name)
		return
	}
	if _, err := res.Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{}, "status"); err != nil {
		log.Error(err, "Recording a manifest's state", "manifest", name)
		return
	}
	c.recorder.Event(m, eventType, reason, st.Message)
}

// previousObjects are the objects a Manifest's status lists.
func previousObjects(m *unstructured.Unstructured) []ObjectRef {
	if m == nil {
		return nil
	}
	items, _, _ := unstructured.NestedSlice(m.Object, "status", "objects")
	var refs []ObjectRef
	for _, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			continue
		}
		var r ObjectRef
		if runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &r) == nil && r.Name != "" {
			refs = append(refs, r)
		}
	}
	return refs
}

func fieldManager(manifest string) string {
	fm := fieldManagerPrefix + manifest
	if len(fm) > 128 {
		fm = fm[:119] + "-" + shortHash([]byte(manifest))
	}
	return fm
}

func checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func shortHash(data []byte) string { return checksum(data)[:8] }
