package localpath

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// rescan is how often the Cleaner looks at its folder without an event.
const rescan = time.Minute

// Cleaner runs on every node: it tells the server where the node keeps
// volumes (DirAnnotation on its Node) and removes the directory of each
// volume that no longer exists.
type Cleaner struct {
	lifecycle.Goroutine
	NodeName   string
	Kubeconfig string // the node's own credentials
	Dir        string
}

var _ lifecycle.Component = (*Cleaner)(nil)

func (c *Cleaner) Name() string { return "local-path-cleaner" }

func (c *Cleaner) Start(ctx context.Context) error {
	rc, err := kubeclient.Config(c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("node credentials %s: %w", c.Kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("local storage folder: %w", err)
	}
	c.Go(ctx, func(ctx context.Context) error { return c.run(ctx, client) })
	return nil
}

// Ready does not wait: volumes can be mounted before the first clean-up.
func (c *Cleaner) Ready(ctx context.Context) error { return nil }

func (c *Cleaner) run(ctx context.Context, client kubernetes.Interface) error {
	log := klog.FromContext(ctx).WithName("local-path")
	ctx = klog.NewContext(ctx, log)
	// Retried until the Node is registered.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, DirAnnotation, c.Dir)
	_ = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Nodes().Patch(ctx, c.NodeName, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err == nil, nil
	})

	deleted := make(chan struct{}, 1)
	lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "persistentvolumes", "", fields.Everything())
	_, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{ListerWatcher: lw, ObjectType: &corev1.PersistentVolume{},
		Handler: cache.ResourceEventHandlerFuncs{DeleteFunc: func(any) {
			select {
			case deleted <- struct{}{}:
			default:
			}
		}}})
	go ctrl.RunWithContext(ctx)
	ticker := time.NewTicker(rescan)
	defer ticker.Stop()
	for {
		c.clean(ctx, client)
		select {
		case <-ctx.Done():
			return nil
		case <-deleted:
		case <-ticker.C:
		}
	}
}

// clean removes each volume directory whose volume the apiserver says is
// gone. It asks the apiserver for each one rather than trust a cache: a
// directory is user data.
func (c *Cleaner) clean(ctx context.Context, client kubernetes.Interface) {
	log := klog.FromContext(ctx)
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		log.Error(err, "Reading the local storage folder", "dir", c.Dir)
		return
	}
	for _, e := range entries {
		name, ok := volumeOfDir(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			continue
		}
		path := filepath.Join(c.Dir, e.Name())
		if err := os.RemoveAll(path); err != nil {
			log.Error(err, "Removing the directory of a deleted volume", "path", path)
			continue
		}
		log.Info("Removed the directory of a deleted volume", "volume", name, "path", path)
	}
}

// volumeOfDir returns the volume name a directory was made for
// (pvc-UID_NAMESPACE_CLAIM, see VolumeDir).
func volumeOfDir(dir string) (string, bool) {
	name, _, ok := strings.Cut(dir, "_")
	return name, ok && strings.HasPrefix(name, "pvc-")
}
