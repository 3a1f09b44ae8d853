// Package join is how an agent becomes a node of a cluster, both sides of it.
//
// The agent reads the cluster CA from kube-public/cluster-info (readable
// without credentials) and trusts it only if its sha256 matches the hash in
// its token. It then authenticates with the token (a Kubernetes bootstrap
// token) and asks for its certificates with CertificateSigningRequests, as
// kubelet's TLS bootstrap does: its kubelet client certificate (approved by
// the controller-manager), its kubelet serving certificate and the
// kube-proxy and flannel client certificates (approved by the server's
// Approver). Everything goes through the apiserver's port.
package join

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hw-k8s/hw/pkg/rbac"
)

// Settings are the cluster-wide settings an agent's node must share with
// the server's.
type Settings struct {
	ClusterCIDR    string `json:"clusterCIDR"`
	ServiceCIDR    string `json:"serviceCIDR"`
	ClusterDNS     string `json:"clusterDNS"`
	ClusterDomain  string `json:"clusterDomain"`
	FlannelBackend string `json:"flannelBackend"`
	// DisableNetworkPolicy: no node enforces NetworkPolicies.
	DisableNetworkPolicy bool `json:"disableNetworkPolicy,omitempty"`
	// ClientCA verifies the apiserver's requests to a kubelet.
	ClientCA string `json:"clientCA"`
}

// settingsKey is the key of Settings in the agent config ConfigMap.
const settingsKey = "settings.json"

// Publish puts in place what joining agents read: the CA and server URL in
// kube-public/cluster-info, and the settings in kube-system/hw-agent-config.
func Publish(ctx context.Context, client kubernetes.Interface, serverURL string, caPEM []byte, s Settings) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[""] = &clientcmdapi.Cluster{Server: serverURL, CertificateAuthorityData: caPEM}
	kubeconfig, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	settings, err := json.Marshal(s)
	if err != nil {
		return err
	}
	opts := metav1.ApplyOptions{FieldManager: "hw", Force: true}
	for _, cm := range []*corev1ac.ConfigMapApplyConfiguration{
		corev1ac.ConfigMap(rbac.ClusterInfo, metav1.NamespacePublic).WithData(map[string]string{"kubeconfig": string(kubeconfig)}),
		corev1ac.ConfigMap(rbac.AgentConfig, metav1.NamespaceSystem).WithData(map[string]string{settingsKey: string(settings)}),
	} {
		if _, err := client.CoreV1().ConfigMaps(*cm.Namespace).Apply(ctx, cm, opts); err != nil {
			return fmt.Errorf("publishing %s/%s: %w", *cm.Namespace, *cm.Name, err)
		}
	}
	return nil
}
