package join

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/rbac"
)

// Client certificates an agent may ask for besides its kubelet's.
const (
	KubeProxyUser = "system:kube-proxy"
	FlannelUser   = rbac.FlannelUser
)

// Approver approves the certificate requests of joining agents that
// Kubernetes leaves to the distribution: kubelet serving certificates, and
// the kube-proxy and flannel client certificates. Anything else is left
// alone for an administrator.
type Approver struct {
	lifecycle.Goroutine
	clients *kubeclient.Shared
	client  kubernetes.Interface
	synced  chan struct{}
}

var _ lifecycle.Component = (*Approver)(nil)

// NewApprover returns the approver; nothing runs until Start.
func NewApprover(clients *kubeclient.Shared) *Approver {
	return &Approver{clients: clients, synced: make(chan struct{})}
}

func (a *Approver) Name() string { return "csr-approver" }

// Init has nothing to check: the approver's rules are fixed.
func (a *Approver) Init(ctx context.Context) error { return nil }

func (a *Approver) Start(ctx context.Context) error {
	client, err := a.clients.Client()
	if err != nil {
		return err
	}
	a.client = client
	a.Go(ctx, a.run)
	return nil
}

func (a *Approver) Ready(ctx context.Context) error { return a.WaitReady(ctx, a.synced) }

func (a *Approver) run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("csr-approver")
	factory, err := a.clients.Informers()
	if err != nil {
		return err
	}
	informer := factory.Certificates().V1().CertificateSigningRequests().Informer()
	handle := func(obj any) {
		csr, ok := obj.(*certificatesv1.CertificateSigningRequest)
		if !ok || decided(csr) {
			return
		}
		verdict, reason, why := certificatesv1.CertificateApproved, "HWAgentJoin", ""
		if csr.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName && slices.Contains(csr.Spec.Groups, rbac.AgentGroup) {
			var ok bool
			ok, why = a.claimNodeName(ctx, csr)
			if !ok {
				verdict, reason = certificatesv1.CertificateDenied, "NodeNameTaken"
			}
		} else {
			var ok bool
			if ok, why = Decide(csr); !ok {
				log.V(1).Info("Leaving certificate request to an administrator", "csr", csr.Name, "reason", why)
				return
			}
		}
		csr = csr.DeepCopy()
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: verdict, Status: corev1.ConditionTrue,
			Reason: reason, Message: why, LastUpdateTime: metav1.Now(),
		})
		if _, err := a.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
			log.Error(err, "Approving certificate request", "csr", csr.Name)
			return
		}
		log.Info("Decided certificate request", "csr", csr.Name, "verdict", verdict, "requester", csr.Spec.Username, "reason", why)
	}
	reg, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	})
	if err != nil {
		return err
	}
	defer informer.RemoveEventHandler(reg)
	a.clients.StartInformers()
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return ctx.Err()
	}
	close(a.synced)
	<-ctx.Done()
	return nil
}

func decided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied {
			return true
		}
	}
	return false
}

// Decide says whether hw approves a request, and why (or why not).
func Decide(csr *certificatesv1.CertificateSigningRequest) (bool, string) {
	joining := slices.Contains(csr.Spec.Groups, rbac.AgentGroup)
	node, isNode := strings.CutPrefix(csr.Spec.Username, "system:node:")
	if !joining && !isNode {
		return false, "not requested by a joining agent or a node"
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return false, "request is not PEM"
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return false, "request does not parse: " + err.Error()
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return false, "request names e-mail addresses or URIs"
	}
	usages := func(allowed ...certificatesv1.KeyUsage) bool {
		for _, u := range csr.Spec.Usages {
			if !slices.Contains(allowed, u) {
				return false
			}
		}
		return true
	}
	switch csr.Spec.SignerName {
	case certificatesv1.KubeletServingSignerName:
		name, ok := strings.CutPrefix(req.Subject.CommonName, "system:node:")
		if !ok || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
			return false, "kubelet serving request is not for system:node:<name> in system:nodes"
		}
		if isNode && name != node {
			return false, fmt.Sprintf("node %s asks for node %s's serving certificate", node, name)
		}
		if !usages(certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth) {
			return false, "kubelet serving request asks for more than server auth"
		}
		return true, "kubelet serving certificate of node " + name
	case certificatesv1.KubeAPIServerClientSignerName:
		if !joining {
			return false, "only a joining agent gets component client certificates"
		}
		if cn := req.Subject.CommonName; (cn != KubeProxyUser && cn != FlannelUser) || len(req.Subject.Organization) > 0 {
			return false, "client request is not for kube-proxy or flannel"
		}
		if !usages(certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth) {
			return false, "client request asks for more than client auth"
		}
		return true, "client certificate of " + req.Subject.CommonName + " for a joining agent"
	}
	return false, "signer " + csr.Spec.SignerName + " is not hw's to approve"
}

// NodePasswordAnnotation carries, on a joining agent's kubelet client
// request, the sha256 of the password the agent made for itself on its first
// join. The first machine to join under a name holds it from then on.
const NodePasswordAnnotation = "hw.io/node-password-sha256"

// claimNodeName decides a joining agent's kubelet client request: the node
// name is free (and is now held by this machine), or held by the machine
// with the same password, or held by another machine and refused.
func (a *Approver) claimNodeName(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) (bool, string) {
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return false, "request is not PEM"
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return false, "request does not parse"
	}
	name, ok := strings.CutPrefix(req.Subject.CommonName, "system:node:")
	if !ok {
		return false, "kubelet client request is not for system:node:<name>"
	}
	hash := csr.Annotations[NodePasswordAnnotation]
	if len(hash) != 64 {
		return false, "request carries no node password; join with hw agent"
	}
	secrets := a.client.CoreV1().Secrets(metav1.NamespaceSystem)
	secretName := "hw-node-password." + name
	held, err := secrets.Get(ctx, secretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: secretName, Labels: map[string]string{"app.kubernetes.io/managed-by": "hw"}},
			Data:       map[string][]byte{"sha256": []byte(hash)},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, "cannot record the node's password: " + err.Error()
		}
		return true, "node " + name + " joins for the first time"
	}
	if err != nil {
		return false, "cannot read the node's password: " + err.Error()
	}
	if subtle.ConstantTimeCompare(held.Data["sha256"], []byte(hash)) != 1 {
		return false, fmt.Sprintf("node name %s is held by another machine; choose another --node-name, or delete the node (kubectl delete node %s; kubectl -n kube-system delete secret %s) if that machine is gone", name, name, secretName)
	}
	return true, "node " + name + " joins again"
}
