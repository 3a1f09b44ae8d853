package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hw-k8s/hw/pkg/rbac"
)

func request(t *testing.T, user string, groups []string, signer string, subject pkix.Name, usages ...certificatesv1.KeyUsage) *certificatesv1.CertificateSigningRequest {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{
		Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		SignerName: signer, Usages: usages, Username: user, Groups: groups,
	}}
}

func TestApproverDecides(t *testing.T) {
	agent := []string{"system:bootstrappers", rbac.AgentGroup, "system:authenticated"}
	nodeSubject := pkix.Name{CommonName: "system:node:pi", Organization: []string{"system:nodes"}}
	serving := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	client := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	for _, tc := range []struct {
		name string
		csr  *certificatesv1.CertificateSigningRequest
		want bool
	}{
		{"agent's kubelet serving", request(t, "system:bootstrap:abcdef", agent, certificatesv1.KubeletServingSignerName, nodeSubject, serving...), true},
		{"node renews its own serving", request(t, "system:node:pi", []string{"system:nodes"}, certificatesv1.KubeletServingSignerName, nodeSubject, serving...), true},
		{"node asks for another node's serving", request(t, "system:node:other", []string{"system:nodes"}, certificatesv1.KubeletServingSignerName, nodeSubject, serving...), false},
		{"serving with client auth", request(t, "system:bootstrap:abcdef", agent, certificatesv1.KubeletServingSignerName, nodeSubject, append(serving, certificatesv1.UsageClientAuth)...), false},
		{"agent's kube-proxy", request(t, "system:bootstrap:abcdef", agent, certificatesv1.KubeAPIServerClientSignerName, pkix.Name{CommonName: KubeProxyUser}, client...), true},
		{"agent's flannel", request(t, "system:bootstrap:abcdef", agent, certificatesv1.KubeAPIServerClientSignerName, pkix.Name{CommonName: FlannelUser}, client...), true},
		{"agent wants admin", request(t, "system:bootstrap:abcdef", agent, certificatesv1.KubeAPIServerClientSignerName, pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}, client...), false},
		{"agent wants kube-proxy in system:masters", request(t, "system:bootstrap:abcdef", agent, certificatesv1.KubeAPIServerClientSignerName, pkix.Name{CommonName: KubeProxyUser, Organization: []string{"system:masters"}}, client...), false},
		{"a user asks", request(t, "alice", []string{"system:authenticated"}, certificatesv1.KubeAPIServerClientSignerName, pkix.Name{CommonName: KubeProxyUser}, client...), false},
		{"kubelet client is the controller-manager's", request(t, "system:bootstrap:abcdef", agent, certificatesv1.KubeAPIServerClientKubeletSignerName, nodeSubject, client...), false},
	} {
		if got, why := Decide(tc.csr); got != tc.want {
			t.Errorf("%s: approve = %v (%s), want %v", tc.name, got, why, tc.want)
		}
	}
}

func TestNodeNameIsHeldByTheFirstMachine(t *testing.T) {
	ctx := context.Background()
	a := &Approver{client: fake.NewClientset()} // as Start leaves it
	agent := []string{"system:bootstrappers", rbac.AgentGroup}
	subject := pkix.Name{CommonName: "system:node:pi", Organization: []string{"system:nodes"}}
	ask := func(hash string) (bool, string) {
		csr := request(t, "system:bootstrap:abcdef", agent, certificatesv1.KubeAPIServerClientKubeletSignerName, subject,
			certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth)
		csr.Annotations = map[string]string{NodePasswordAnnotation: hash}
		return a.claimNodeName(ctx, csr)
	}
	mine, theirs := strings.Repeat("a", 64), strings.Repeat("b", 64)
	if ok, why := ask(mine); !ok {
		t.Fatalf("first join refused: %s", why)
	}
	if ok, why := ask(mine); !ok {
		t.Errorf("same machine joining again refused: %s", why)
	}
	if ok, why := ask(theirs); ok || !strings.Contains(why, "node name pi is held by another machine") {
		t.Errorf("another machine under the same name: approve=%v (%s)", ok, why)
	}
	if ok, _ := ask(""); ok {
		t.Error("a request without a node password was approved")
	}
}
