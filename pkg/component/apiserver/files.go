package apiserver

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hw-k8s/hw/pkg/atomicfile"
)

// Files are the configuration files hw writes for kube-apiserver.
type Files struct {
	EncryptionConfig     string
	AuditPolicy          string
	AuthenticationConfig string
}

// FilesIn names the apiserver's policy files in settingsDir and the
// encryption config in credDir; nothing is read or written.
func FilesIn(settingsDir, credDir string) Files {
	return Files{
		EncryptionConfig:     filepath.Join(credDir, "encryption-config.json"),
		AuditPolicy:          filepath.Join(settingsDir, "audit-policy.yaml"),
		AuthenticationConfig: filepath.Join(settingsDir, "authentication-config.yaml"),
	}
}

// Ensure writes the files. The encryption key is made once, on first boot,
// and kept: losing it makes every Secret unreadable.
func (f Files) Ensure() error {
	if _, err := os.Stat(f.EncryptionConfig); os.IsNotExist(err) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		if err := atomicfile.Write(f.EncryptionConfig, []byte(encryptionConfig(key)), 0o600); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("cannot read %s: %w", f.EncryptionConfig, err)
	}
	if err := atomicfile.Write(f.AuditPolicy, []byte(auditPolicy), 0o644); err != nil {
		return err
	}
	return atomicfile.Write(f.AuthenticationConfig, []byte(authenticationConfig), 0o644)
}

// encryptionConfig encrypts Secrets with secretbox (XSalsa20-Poly1305).
// The identity provider comes last so Secrets written before encryption was
// on stay readable.
func encryptionConfig(key []byte) string {
	return fmt.Sprintf(`{
  "kind": "EncryptionConfiguration",
  "apiVersion": "apiserver.config.k8s.io/v1",
  "resources": [
    {
      "resources": ["secrets"],
      "providers": [
        {"secretbox": {"keys": [{"name": "hw-1", "secret": %q}]}},
        {"identity": {}}
      ]
    }
  ]
}
`, base64.StdEncoding.EncodeToString(key))
}

// authenticationConfig allows anonymous requests only to the health and
// version endpoints and to kube-public/cluster-info (the cluster CA, which a
// joining agent checks against its token's hash before it trusts the
// server); anything else without credentials is 401.
const authenticationConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
  - path: /livez
  - path: /readyz
  - path: /healthz
  - path: /version
  - path: /api/v1/namespaces/kube-public/configmaps/cluster-info
`

// auditPolicy records who changed what, without request bodies of Secrets
// and without the noise of health checks and the components' own reads.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
- RequestReceived
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version", "/metrics"]
- level: None
  users: ["system:kube-proxy", "system:kube-scheduler", "system:kube-controller-manager"]
  verbs: ["get", "list", "watch"]
- level: None
  userGroups: ["system:nodes", "system:serviceaccounts:kube-system"]
  verbs: ["get", "list", "watch"]
- level: None
  resources:
  - group: "coordination.k8s.io"
    resources: ["leases"]
  - group: ""
    resources: ["events"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "configmaps", "serviceaccounts/token"]
  - group: "authentication.k8s.io"
    resources: ["tokenreviews"]
- level: Request
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: Metadata
`
