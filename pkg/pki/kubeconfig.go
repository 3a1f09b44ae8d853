package pki

import (
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hw-k8s/hw/pkg/atomicfile"
)

// WriteKubeconfig writes a kubeconfig for user at path, with the CA, the
// client certificate and key embedded so the file works on its own when copied.
func WriteKubeconfig(path, serverURL string, ca *Authority, user *Leaf, mode os.FileMode) error {
	return WriteKubeconfigFiles(path, serverURL, ca.CertPEM(), user.CertFile, user.KeyFile, mode)
}

// WriteKubeconfigFiles is WriteKubeconfig for a CA known by its PEM and a
// client certificate and key in files.
func WriteKubeconfigFiles(path, serverURL string, caPEM []byte, certFile, keyFile string, mode os.FileMode) error {
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	const name = "default"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: serverURL, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, mode)
}

// SetKubeconfigServer points every cluster of the kubeconfig at path to
// serverURL, leaving the file alone if it does already.
func SetKubeconfigServer(path, serverURL string) error {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return err
	}
	changed := false
	for _, c := range cfg.Clusters {
		if c.Server != serverURL {
			c.Server, changed = serverURL, true
		}
	}
	if !changed {
		return nil
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
