// Package localpath is hw's local storage (the local-path StorageClass): the
// server's Provisioner turns each claim into a hostPath volume in a directory
// on the node its first pod was scheduled to (volumeBindingMode
// WaitForFirstConsumer), pinned there by node affinity; kubelet creates the
// directory on mount. When a claim with reclaim policy Delete goes, the
// Provisioner deletes its volume and the node's Cleaner removes the
// directory. No pod or image is involved.
package localpath

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

const (
	// ProvisionerName is the StorageClass provisioner hw serves.
	ProvisionerName = "hw.io/local-path"
	// DirAnnotation on a Node says where that node keeps volumes; each
	// node's hw sets it (its --data-dir may differ from the server's).
	DirAnnotation = "hw.io/local-path-dir"
	// DefaultDir is the folder for nodes that have not said.
	DefaultDir = "/var/lib/hw/storage"

	selectedNodeAnnotation  = "volume.kubernetes.io/selected-node"
	provisionedByAnnotation = "pv.kubernetes.io/provisioned-by"
)

// Provisioner is the server-side component.
type Provisioner struct {
	lifecycle.Goroutine
	clients *kubeclient.Shared
	client  kubernetes.Interface
	synced  chan struct{}
}

var _ lifecycle.Component = (*Provisioner)(nil)

// NewProvisioner returns the component; nothing runs until Start.
func NewProvisioner(clients *kubeclient.Shared) *Provisioner {
	return &Provisioner{clients: clients, synced: make(chan struct{})}
}

func (p *Provisioner) Name() string { return "local-path-provisioner" }

// Init has nothing to check: the provisioner has no settings.
func (p *Provisioner) Init(ctx context.Context) error { return nil }

func (p *Provisioner) Start(ctx context.Context) error {
	client, err := p.clients.Client()
	if err != nil {
		return err
	}
	p.client = client
	p.Go(ctx, p.run)
	return nil
}

func (p *Provisioner) Ready(ctx context.Context) error { return p.WaitReady(ctx, p.synced) }

// key kinds in the work queue.
const (
	claimKey  = "claim/"
	volumeKey = "volume/"
)

func (p *Provisioner) run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("local-path")
	ctx = klog.NewContext(ctx, log)
	recorder, stopEvents := kubeclient.EventRecorder(ctx, p.client, corev1.EventSource{Component: ProvisionerName})
	defer stopEvents()

	factory, err := p.clients.Informers()
	if err != nil {
		return err
	}
	claims := factory.Core().V1().PersistentVolumeClaims()
	volumes := factory.Core().V1().PersistentVolumes()
	classes := factory.Storage().V1().StorageClasses()
	nodes := factory.Core().V1().Nodes()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	enqueue := func(prefix string) cache.ResourceEventHandlerFuncs {
		add := func(obj any) {
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				queue.Add(prefix + key)
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }}
	}
	synced := []cache.InformerSynced{classes.Informer().HasSynced, nodes.Informer().HasSynced}
	for _, h := range []struct {
		inf    cache.SharedIndexInformer
		prefix string
	}{{claims.Informer(), claimKey}, {volumes.Informer(), volumeKey}} {
		reg, err := h.inf.AddEventHandler(enqueue(h.prefix))
		if err != nil {
			return err
		}
		defer h.inf.RemoveEventHandler(reg)
		synced = append(synced, reg.HasSynced)
	}
	p.clients.StartInformers()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	close(p.synced)
	s := &syncer{client: p.client, recorder: recorder, claims: claims.Lister(), volumes: volumes.Lister(), classes: classes.Lister(), nodes: nodes.Lister()}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		key, quit := queue.Get()
		if quit {
			return nil
		}
		var err error
		if claim, ok := strings.CutPrefix(key, claimKey); ok {
			err = s.claim(ctx, claim)
		} else {
			err = s.volume(ctx, strings.TrimPrefix(key, volumeKey))
		}
		if err != nil && ctx.Err() == nil {
			log.Error(err, "Retrying", "key", key)
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

// volumeName is the volume of a claim, as external provisioners name it.
func volumeName(claim *corev1.PersistentVolumeClaim) string {
	return "pvc-" + string(claim.UID)
}

// VolumeDir is the directory of a claim's volume below a node's folder.
func VolumeDir(nodeDir string, claim *corev1.PersistentVolumeClaim) string {
	return filepath.Join(nodeDir, fmt.Sprintf("%s_%s_%s", volumeName(claim), claim.Namespace, claim.Name))
}

// classOf returns the claim's StorageClass if hw provisions it.
func (s *syncer) classOf(claim *corev1.PersistentVolumeClaim) *storagev1.StorageClass {
	if claim.Spec.StorageClassName == nil {
		return nil
	}
	class, err := s.classes.Get(*claim.Spec.StorageClassName)
	if err != nil || class.Provisioner != ProvisionerName {
		return nil
	}
	return class
}

func nodeDir(node *corev1.Node) string {
	if dir := node.Annotations[DirAnnotation]; filepath.IsAbs(dir) {
		return dir
	}
	return DefaultDir
}

func (s *syncer) claim(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	claim, err := s.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	class := s.classOf(claim)
	if class == nil || claim.Spec.VolumeName != "" || claim.Status.Phase != corev1.ClaimPending || claim.DeletionTimestamp != nil {
		return nil
	}
	nodeName := claim.Annotations[selectedNodeAnnotation]
	if nodeName == "" {
		return nil // not yet scheduled: WaitForFirstConsumer
	}
	if _, err := s.volumes.Get(volumeName(claim)); err == nil {
		return nil // made already; the PV controller binds it
	}
	if claim.Spec.VolumeMode != nil && *claim.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		s.recorder.Event(claim, corev1.EventTypeWarning, "ProvisioningFailed", "local-path volumes are directories: volumeMode Block is not supported")
		return nil
	}
	if claim.Spec.Selector != nil {
		s.recorder.Event(claim, corev1.EventTypeWarning, "ProvisioningFailed", "local-path does not support a selector on the claim")
		return nil
	}
	node, err := s.nodes.Get(nodeName)
	if err != nil {
		return fmt.Errorf("node %s of claim %s: %w", nodeName, key, err)
	}
	pv := newVolume(claim, class, node)
	if _, err := s.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		s.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "creating volume %s: %v", pv.Name, err)
		return err
	}
	s.recorder.Eventf(claim, corev1.EventTypeNormal, "ProvisioningSucceeded", "volume %s at %s on node %s", pv.Name, pv.Spec.HostPath.Path, nodeName)
	klog.FromContext(ctx).Info("Provisioned", "claim", key, "volume", pv.Name, "node", nodeName, "path", pv.Spec.HostPath.Path)
	return nil
}

func newVolume(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, node *corev1.Node) *corev1.PersistentVolume {
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	dirType := corev1.HostPathDirectoryOrCreate
	hostname := node.Labels[corev1.LabelHostname]
	if hostname == "" {
		hostname = node.Name
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        volumeName(claim),
			Annotations: map[string]string{provisionedByAnnotation: ProvisionerName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: claim.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   claim.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			MountOptions:                  class.MountOptions,
			VolumeMode:                    claim.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: VolumeDir(nodeDir(node), claim), Type: &dirType},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname},
				}}}},
			}},
		},
	}
}

// volume deletes a released volume hw made whose policy is Delete; the
// node's Cleaner then removes its directory.
func (s *syncer) volume(ctx context.Context, name string) error {
	pv, err := s.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pv.Annotations[provisionedByAnnotation] != ProvisionerName || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.DeletionTimestamp != nil {
		return nil
	}
	err = s.client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	klog.FromContext(ctx).Info("Deleted released volume", "volume", name)
	return nil
}
