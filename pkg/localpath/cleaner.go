package localpath

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	NodeName string
	Clients  *kubeclient.Shared // the node's own credentials
	Dir      string
}

var _ lifecycle.Component = (*Cleaner)(nil)

func (c *Cleaner) Name() string { return "local-path-cleaner" }

// Init checks the volume folder is an absolute path: it is written into
// every PersistentVolume of this node.
func (c *Cleaner) Init(ctx context.Context) error {
	if !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("local storage folder %q is not an absolute path", c.Dir)
	}
	return nil
}

func (c *Cleaner) Start(ctx context.Context) error {
	client, err := c.Clients.Client()
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

	passes := kubeclient.NewPasses()
	factory, err := c.Clients.Informers()
	if err != nil {
		return err
	}
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	reg, err := volumes.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(any) { passes.Notify() }})
	if err != nil {
		return err
	}
	defer volumes.RemoveEventHandler(reg)
	c.Clients.StartInformers()
	passes.Run(ctx, rescan, 0, func(ctx context.Context) { c.clean(ctx, client) })
	return nil
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
