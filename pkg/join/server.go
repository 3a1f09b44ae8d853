package join

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/atomicfile"
	"github.com/hw-k8s/hw/pkg/rbac"
	"github.com/hw-k8s/hw/pkg/token"
)

// SharedFiles are the files every server of a cluster holds alike, by path
// relative to the data dir: the CAs and their keys, the service-account key
// pair, the Secrets encryption configuration and the server token.
type SharedFiles map[string][]byte

// SharedName is the name the file at path, under dataDir, has among the
// shared files.
func SharedName(dataDir, path string) (string, error) {
	rel, err := filepath.Rel(dataDir, path)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s is not under %s", path, dataDir)
	}
	return filepath.ToSlash(rel), nil
}

// ReadShared reads the files at paths, which must lie under dataDir.
func ReadShared(dataDir string, paths []string) (SharedFiles, error) {
	out := SharedFiles{}
	for _, p := range paths {
		name, err := SharedName(dataDir, p)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out[name] = data
	}
	return out, nil
}

// Write puts the files under dataDir, refusing any path that would leave it.
func (f SharedFiles) Write(dataDir string) error {
	names := make([]string, 0, len(f))
	for name := range f {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		rel := filepath.FromSlash(name)
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("the servers' shared files hold %q, which is not a path inside the data dir", name)
		}
		if err := atomicfile.Write(filepath.Join(dataDir, rel), f[name], 0o600); err != nil {
			return err
		}
	}
	return nil
}

// The Secret's one key.
const sealedKey = "sealed"

// sealKey is the AES-256 key of the shared files: only holders of the server
// token open them, even someone who may read Secrets in kube-system.
func sealKey(tok token.Token) []byte {
	sum := sha256.Sum256([]byte("hw-server-bootstrap:" + tok.Secret))
	return sum[:]
}

// sealer is the AES-GCM of the shared files under the server token.
func sealer(tok token.Token) (cipher.AEAD, error) {
	block, err := aes.NewCipher(sealKey(tok))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(tok token.Token, plain []byte) ([]byte, error) {
	gcm, err := sealer(tok)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, plain, nil), nil
}

func open(tok token.Token, sealed []byte) ([]byte, error) {
	gcm, err := sealer(tok)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("too short")
	}
	return gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
}

// PublishServerFiles seals files with the server token and keeps them in the
// Secret kube-system/hw-server-bootstrap, which only the server token may
// read (rbac.ServerGroup).
func PublishServerFiles(ctx context.Context, client kubernetes.Interface, tok token.Token, files SharedFiles) error {
	plain, err := json.Marshal(files)
	if err != nil {
		return err
	}
	sealed, err := seal(tok, plain)
	if err != nil {
		return err
	}
	secret := corev1ac.Secret(rbac.ServerBootstrap, metav1.NamespaceSystem).
		WithLabels(map[string]string{"app.kubernetes.io/managed-by": "hw"}).
		WithData(map[string][]byte{sealedKey: sealed})
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Apply(ctx, secret, metav1.ApplyOptions{FieldManager: "hw", Force: true}); err != nil {
		return fmt.Errorf("publishing the servers' shared files: %w", err)
	}
	return nil
}

// ServerJoin is what a joining server gets from the cluster.
type ServerJoin struct {
	CAPEM    []byte
	Settings Settings
	Files    SharedFiles
}

// FetchServerFiles gets what a new server shares with the others, from an
// existing server: the cluster CA (checked against the token's hash), the
// cluster settings and the shared files. Only the server token may; a join
// token is refused. A server that has not published them yet is waited for.
func FetchServerFiles(ctx context.Context, server string, tok token.Token) (*ServerJoin, error) {
	caPEM, err := discoverCA(ctx, server, tok)
	if err != nil {
		return nil, err
	}
	boot, err := bootstrapClient(server, tok, caPEM)
	if err != nil {
		return nil, err
	}
	out := &ServerJoin{CAPEM: caPEM}
	if out.Settings, err = readSettings(ctx, boot, server); err != nil {
		return nil, err
	}
	log := klog.FromContext(ctx)
	var sealed []byte
	err = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := boot.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, rbac.ServerBootstrap, metav1.GetOptions{})
		switch {
		case apierrors.IsForbidden(err):
			return false, fmt.Errorf("the server %s refused to hand this token the servers' shared files: it is a join token, which joins agents only; a server joins with the server token (<data-dir>/server/token on an existing server)", server)
		case apierrors.IsUnauthorized(err):
			return false, fmt.Errorf("the server %s refused the token: it is wrong or was deleted; use <data-dir>/server/token of an existing server", server)
		case apierrors.IsNotFound(err):
			log.Info("The server has not published its shared files yet; waiting", "server", server)
			return false, nil
		case err != nil:
			log.Info("Reading the servers' shared files failed; retrying", "server", server, "err", err.Error())
			return false, nil
		}
		sealed = s.Data[sealedKey]
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	plain, err := open(tok, sealed)
	if err != nil {
		return nil, fmt.Errorf("the token does not open the servers' shared files from %s: it is not this cluster's server token", server)
	}
	if err := json.Unmarshal(plain, &out.Files); err != nil {
		return nil, fmt.Errorf("the servers' shared files from %s are unreadable: %w", server, err)
	}
	return out, nil
}
