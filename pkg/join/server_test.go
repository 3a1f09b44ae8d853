package join

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hw-k8s/hw/pkg/rbac"
	"github.com/hw-k8s/hw/pkg/token"
)

// The shared files travel sealed with the server token: the same token
// opens them, another does not, and the Secret holds no plain key.
func TestSharedFilesAreSealedWithTheServerToken(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "server", "tls", "server-ca.key")
	if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("-----BEGIN EC PRIVATE KEY-----secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := ReadShared(dir, []string{key})
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	tok := token.Token{CAHash: strings.Repeat("a", 64), Username: "server", Secret: "s3cret"}
	if err := PublishServerFiles(context.Background(), client, tok, files); err != nil {
		t.Fatal(err)
	}
	s, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(context.Background(), rbac.ServerBootstrap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.Data[sealedKey]
	if strings.Contains(string(sealed), "PRIVATE KEY") {
		t.Fatal("the Secret holds the key in the clear")
	}
	if _, err := open(token.Token{Secret: "other"}, sealed); err == nil {
		t.Fatal("another token opened the shared files")
	}
	plain, err := open(token.Token{Secret: "s3cret"}, sealed) // a bare secret is the same token
	if err != nil || !strings.Contains(string(plain), "server/tls/server-ca.key") {
		t.Fatalf("open = %s, %v", plain, err)
	}

	// Written under another data dir at the same relative path.
	other := t.TempDir()
	if err := files.Write(other); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(other, "server", "tls", "server-ca.key")); string(got) != "-----BEGIN EC PRIVATE KEY-----secret" {
		t.Fatalf("written: %q", got)
	}
}

func TestSharedFilesStayInsideTheDataDir(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"../escape", "/etc/passwd", "server/../../escape"} {
		if err := (SharedFiles{name: []byte("x")}).Write(dir); err == nil {
			t.Errorf("wrote %q", name)
		}
	}
	if _, err := ReadShared(dir, []string{"/etc/hostname"}); err == nil {
		t.Error("read a file outside the data dir")
	}
}

func TestWhichCAAnswersAreWaitedOut(t *testing.T) {
	for code, want := range map[int]bool{403: true, 404: true, 429: true, 500: true, 503: true, 401: false, 400: false, 302: false} {
		if got := retryCAStatus(code); got != want {
			t.Errorf("retryCAStatus(%d) = %v, want %v", code, got, want)
		}
	}
}
