package etcdcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// MemberFinalizer is on every server's Node: deleting the Node waits until
// its etcd member is removed, so that no leader change can miss it.
const MemberFinalizer = "hw.io/etcd-member"

// Remover removes a server's etcd member when its Node is deleted
// (`kubectl delete node`), so that a replacement machine can join under the
// same name and the cluster's quorum counts only the servers it has. It
// then lets the deletion finish by dropping MemberFinalizer.
type Remover struct {
	lifecycle.Goroutine
	Clients  *kubeclient.Shared
	Endpoint string
	// TLS gives the etcd client TLS configuration (read when needed: the
	// certificates may not exist when the component is built).
	TLS    func() (*tls.Config, error)
	synced chan struct{}
}

var _ lifecycle.Component = (*Remover)(nil)

func (r *Remover) Name() string                   { return "etcd-member-remover" }
func (r *Remover) Init(ctx context.Context) error { return nil }

func (r *Remover) Start(ctx context.Context) error {
	factory, err := r.Clients.Informers()
	if err != nil {
		return err
	}
	client, err := r.Clients.Client()
	if err != nil {
		return err
	}
	r.synced = make(chan struct{})
	log := klog.FromContext(ctx).WithName("etcd-members")
	deleting := make(chan string, 64)
	nodes := factory.Core().V1().Nodes().Informer()
	notice := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok && n.DeletionTimestamp != nil && slices.Contains(n.Finalizers, MemberFinalizer) {
			select {
			case deleting <- n.Name:
			default: // full: the resync brings it back
			}
		}
	}
	if _, err := nodes.AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc:    notice,
		UpdateFunc: func(_, obj any) { notice(obj) },
	}, time.Minute); err != nil {
		return err
	}
	r.Clients.StartInformers()
	r.Go(ctx, func(ctx context.Context) error {
		if !cache.WaitForCacheSync(ctx.Done(), nodes.HasSynced) {
			return nil
		}
		close(r.synced)
		ctx = klog.NewContext(ctx, log)
		for {
			select {
			case <-ctx.Done():
				return nil
			case name := <-deleting:
				if r.remove(ctx, name) {
					r.release(ctx, client, name)
				}
			}
		}
	})
	return nil
}

func (r *Remover) Ready(ctx context.Context) error { return r.WaitReady(ctx, r.synced) }

// remove removes the member of the deleted server name; true when it is
// gone (or stays as the only one), so the Node may go.
func (r *Remover) remove(ctx context.Context, name string) bool {
	log := klog.FromContext(ctx)
	tlsConfig, err := r.TLS()
	if err != nil {
		log.Error(err, "Removing a deleted server's etcd member", "node", name)
		return false
	}
	c, err := Client([]string{r.Endpoint}, tlsConfig)
	if err != nil {
		log.Error(err, "Removing a deleted server's etcd member", "node", name)
		return false
	}
	defer c.Close()
	callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	removed, err := Remove(callCtx, c, name)
	switch {
	case errors.Is(err, ErrOnlyMember):
		log.Info("The deleted server's etcd member is the cluster's only one: it stays", "node", name)
	case err != nil:
		log.Error(err, "Removing a deleted server's etcd member; retrying", "node", name)
		return false
	case removed:
		log.Info("Removed the etcd member of a deleted server's Node", "node", name)
	}
	return true
}

// release drops MemberFinalizer from the Node, letting its deletion finish.
func (r *Remover) release(ctx context.Context, client kubernetes.Interface, name string) {
	n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return
	}
	n.Finalizers = slices.DeleteFunc(n.Finalizers, func(f string) bool { return f == MemberFinalizer })
	if _, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		klog.FromContext(ctx).Error(err, "Letting a deleted server's Node go; retrying", "node", name)
	}
}
