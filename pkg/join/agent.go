package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/atomicfile"
	"github.com/hw-k8s/hw/pkg/pki"
	"github.com/hw-k8s/hw/pkg/rbac"
	"github.com/hw-k8s/hw/pkg/token"
)

// Request is what an agent joins with, and where it keeps what it gets.
type Request struct {
	Server   string
	Token    token.Token
	NodeName string
	NodeIP   net.IP
	// TLSDir receives certificates and keys; the kubeconfigs go to the paths.
	TLSDir                                        string
	KubeletConfig, KubeProxyConfig, FlannelConfig string
	// StateFile keeps the CA and settings, so a restarted agent starts its
	// node even while the server is away.
	StateFile string
	// PasswordFile holds this machine's node password, made on first join:
	// it proves to the server that a node name is this machine's.
	PasswordFile string
}

// Result is what a node needs from its cluster.
type Result struct {
	CAPEM    []byte   `json:"ca"`
	Settings Settings `json:"settings"`
}

// Join returns the saved identity of an agent that joined before, or joins:
// it finds the cluster CA, checks it against the token, and obtains the
// node's certificates. It retries an unreachable server until ctx ends.
func Join(ctx context.Context, req Request) (*Result, error) {
	log := klog.FromContext(ctx)
	if res, err := req.saved(); err == nil {
		log.Info("Using this agent's saved identity", "node", req.NodeName, "state", req.StateFile)
		return res, nil
	}
	caPEM, err := discoverCA(ctx, req.Server, req.Token)
	if err != nil {
		return nil, err
	}
	boot, err := bootstrapClient(req.Server, req.Token, caPEM)
	if err != nil {
		return nil, err
	}
	res := &Result{CAPEM: caPEM}
	if res.Settings, err = readSettings(ctx, boot, req.Server); err != nil {
		return nil, err
	}
	password, err := nodePassword(req.PasswordFile)
	if err != nil {
		return nil, err
	}
	log.Info("Joining the cluster", "server", req.Server, "node", req.NodeName)
	node := "system:node:" + req.NodeName
	certs := []struct {
		name    string
		signer  string
		subject pkix.Name
		usages  []certificatesv1.KeyUsage
		serving bool
	}{
		{pki.KubeletClientName, certificatesv1.KubeAPIServerClientKubeletSignerName, pkix.Name{CommonName: node, Organization: []string{"system:nodes"}},
			[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, false},
		{pki.KubeletServingName, certificatesv1.KubeletServingSignerName, pkix.Name{CommonName: node, Organization: []string{"system:nodes"}},
			[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}, true},
		{"client-kube-proxy", certificatesv1.KubeAPIServerClientSignerName, pkix.Name{CommonName: KubeProxyUser},
			[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, false},
		{"client-flannel", certificatesv1.KubeAPIServerClientSignerName, pkix.Name{CommonName: FlannelUser},
			[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, false},
	}
	if err := os.MkdirAll(req.TLSDir, 0o700); err != nil {
		return nil, err
	}
	for _, c := range certs {
		tmpl := &x509.CertificateRequest{Subject: c.subject}
		if c.serving {
			tmpl.DNSNames = []string{req.NodeName}
			tmpl.IPAddresses = []net.IP{req.NodeIP}
		}
		var annotations map[string]string
		if c.signer == certificatesv1.KubeAPIServerClientKubeletSignerName {
			sum := sha256.Sum256([]byte(password))
			annotations = map[string]string{NodePasswordAnnotation: hex.EncodeToString(sum[:])}
		}
		if err := requestCertificate(ctx, boot, req.TLSDir, c.name, c.signer, tmpl, c.usages, annotations); err != nil {
			return nil, fmt.Errorf("getting the %s certificate: %w", c.name, err)
		}
	}
	if err := atomicfile.Write(ClientCAFile(req.TLSDir), []byte(res.Settings.ClientCA), 0o644); err != nil {
		return nil, err
	}
	for _, k := range []struct{ path, name string }{
		{req.KubeletConfig, pki.KubeletClientName}, {req.KubeProxyConfig, "client-kube-proxy"}, {req.FlannelConfig, "client-flannel"},
	} {
		if err := pki.WriteKubeconfigFiles(k.path, req.Server, caPEM,
			filepath.Join(req.TLSDir, k.name+".crt"), filepath.Join(req.TLSDir, k.name+".key"), 0o600); err != nil {
			return nil, err
		}
	}
	state, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	return res, atomicfile.Write(req.StateFile, state, 0o600)
}

// bootstrapClient talks to server as the token's bootstrap user, trusting caPEM.
func bootstrapClient(server string, tok token.Token, caPEM []byte) (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(&rest.Config{
		Host: server, BearerToken: tok.BootstrapToken(),
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, Timeout: 30 * time.Second,
	})
}

// readSettings reads the cluster-wide settings a new node must share.
func readSettings(ctx context.Context, boot kubernetes.Interface, server string) (Settings, error) {
	var s Settings
	cm, err := boot.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, rbac.AgentConfig, metav1.GetOptions{})
	if apierrors.IsUnauthorized(err) {
		return s, fmt.Errorf("the server %s refused the token: it is wrong, expired or deleted; get a valid one with 'hw token create' on the server (or use <data-dir>/server/token there)", server)
	}
	if err != nil {
		return s, fmt.Errorf("reading the cluster settings from %s: %w", server, err)
	}
	if err := json.Unmarshal([]byte(cm.Data[settingsKey]), &s); err != nil {
		return s, fmt.Errorf("the server's %s is unreadable: %w", rbac.AgentConfig, err)
	}
	return s, nil
}

// saved loads the result of an earlier join, if its files are all there.
func (req Request) saved() (*Result, error) {
	data, err := os.ReadFile(req.StateFile)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if err := json.Unmarshal(data, res); err != nil {
		return nil, err
	}
	serving := pki.NodeLayout(req.TLSDir).KubeletServing
	for _, f := range []string{req.KubeletConfig, req.KubeProxyConfig, req.FlannelConfig, ClientCAFile(req.TLSDir), serving.CertFile, serving.KeyFile} {
		if _, err := os.Stat(f); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// nodePassword reads this machine's node password, making it on first use.
func nodePassword(path string) (string, error) {
	if data, err := os.ReadFile(path); err == nil && len(data) > 0 {
		return string(data), nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	password := hex.EncodeToString(b)
	return password, atomicfile.Write(path, []byte(password), 0o600)
}

// discoverCA fetches the cluster CA without trusting the server yet, then
// checks it against the hash the token carries.
func discoverCA(ctx context.Context, server string, tok token.Token) ([]byte, error) {
	log := klog.FromContext(ctx)
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// Trust comes from comparing the CA with the token's hash below.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	url := server + "/api/v1/namespaces/kube-public/configmaps/" + rbac.ClusterInfo
	var body []byte
	attempt := 0
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: time.Second, Factor: 2, Cap: 30 * time.Second, Steps: 1 << 30}, func(ctx context.Context) (bool, error) {
		attempt++
		resp, err := insecure.Get(url)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) && runsKubeletOnly(server) {
				return false, fmt.Errorf("%s refuses connections, but a kubelet answers on that machine's port %d: it is an agent, not a server; give a server's URL", server, kubeletPort)
			}
			log.Info("Server not reachable yet; retrying", "server", server, "attempt", attempt, "err", err.Error())
			return false, nil
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			if !retryCAStatus(resp.StatusCode) {
				return false, fmt.Errorf("%s answered %s to the cluster CA request; is it an hw server?", server, resp.Status)
			}
			log.Info("Server not ready to be joined yet (still starting?); retrying", "server", server, "attempt", attempt, "answer", resp.Status)
			return false, nil
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return err == nil, err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("server %s not reachable: %w", server, ctx.Err())
		}
		return nil, err
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, fmt.Errorf("%s sent an unreadable cluster-info: %v", server, err)
	}
	cfg, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
	if err != nil {
		return nil, fmt.Errorf("%s sent an unreadable cluster-info: %v", server, err)
	}
	var caPEM []byte
	for _, c := range cfg.Clusters {
		caPEM = c.CertificateAuthorityData
	}
	if len(caPEM) == 0 {
		return nil, fmt.Errorf("%s sent no cluster CA", server)
	}
	if tok.CAHash == "" {
		log.Info("WARNING: the token has no CA hash, so the server's identity is not checked; use the full K10… token from the server's <data-dir>/server/token or 'hw token create'")
		return caPEM, nil
	}
	if got := token.CAHash(caPEM); got != tok.CAHash {
		return nil, fmt.Errorf("the server %s holds CA %s, but the token is for CA %s: refusing to join (wrong --server, or a token of another cluster)", server, got, tok.CAHash)
	}
	return caPEM, nil
}

// kubeletPort is where every node's kubelet serves.
const kubeletPort = 10250

// runsKubeletOnly tells whether the machine of server runs a kubelet: with
// its apiserver port closed, that is an agent, since a server's kubelet
// runs in the same process as its apiserver, and starts after it.
func runsKubeletOnly(server string) bool {
	u, err := neturl.Parse(server)
	if err != nil {
		return false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(u.Hostname(), fmt.Sprint(kubeletPort)), 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// retryCAStatus tells whether an answer other than 200 to the cluster CA
// request is worth waiting out: a server that is starting answers 403 or
// 404 until it has published its join information, and 429 or 5xx while
// busy or while its etcd has no quorum. Anything else (401: the path is not
// open to anonymous requests, as it is on an hw server) means this is not an
// hw server.
func retryCAStatus(code int) bool {
	return code == http.StatusForbidden || code == http.StatusNotFound || code == http.StatusTooManyRequests || code >= 500
}

// requestCertificate makes a key, asks for its certificate with a CSR, waits
// for it to be approved and signed, and writes NAME.key and NAME.crt in dir.
func requestCertificate(ctx context.Context, client kubernetes.Interface, dir, name, signer string, tmpl *x509.CertificateRequest, usages []certificatesv1.KeyUsage, annotations map[string]string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csrPEM, err := certutil.MakeCSRFromTemplate(key, tmpl)
	if err != nil {
		return err
	}
	created, err := client.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "hw-" + name + "-", Annotations: annotations},
		Spec:       certificatesv1.CertificateSigningRequestSpec{Request: csrPEM, SignerName: signer, Usages: usages},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	reqName, uid := created.Name, created.UID
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cert, err := csr.WaitForCertificate(waitCtx, client, reqName, uid)
	if err != nil {
		return fmt.Errorf("request %s was not signed: %w", reqName, err)
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, name+".crt"), cert, 0o644)
}

// ClientCAFile is where a joined node keeps the cluster's client CA, which
// its kubelet verifies the apiserver's requests with.
func ClientCAFile(tlsDir string) string { return filepath.Join(tlsDir, "client-ca.crt") }
