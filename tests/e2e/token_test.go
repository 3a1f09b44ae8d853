//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestJoinTokens checks `hw token create|list|delete`: a token pins the
// cluster CA like the server's own, authenticates while it is valid, and
// is refused once expired or deleted.
func TestJoinTokens(t *testing.T) {
	netw := newNetwork(t)
	node := newHWNode(t, netw.addNode(t, "tokens"))
	p := node.server(t, "--flannel-backend", "none")
	node.waitReady(t, p, 4*time.Minute)

	hwToken := func(args ...string) (string, error) {
		// hw token SUBCOMMAND --kubeconfig FILE FLAGS...
		full := []string{"netns", "exec", node.netns, node.bin, "token", args[0], "--kubeconfig", node.kubeconfig()}
		out, err := exec.Command("ip", append(full, args[1:]...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	serverToken, err := os.ReadFile(node.dataDir + "/server/token")
	if err != nil {
		t.Fatal(err)
	}
	caHash := strings.SplitN(string(serverToken), "::", 2)[0]

	out, err := hwToken("create", "--ttl", "1h", "--description", "garage node")
	if err != nil {
		t.Fatalf("hw token create: %v: %s", err, out)
	}
	m := regexp.MustCompile(`^(K10[0-9a-f]{64})::(([a-z0-9]{6})\.[a-z0-9]{16})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("hw token create printed %q, want K10<CA hash>::<id>.<secret>", out)
	}
	if m[1] != caHash {
		t.Errorf("token pins CA %s, the server's token pins %s", m[1], caHash)
	}
	valid, id := m[2], m[3]
	if list, err := hwToken("list"); err != nil || !strings.Contains(list, id) || !strings.Contains(list, "garage node") {
		t.Errorf("hw token list: %v\n%s", err, list)
	}
	// A valid token authenticates (then RBAC decides: 403); anything else is 401.
	if code := node.statusWithToken(t, valid); code != http.StatusForbidden {
		t.Errorf("request with a valid join token: HTTP %d, want 403 (authenticated, not authorized)", code)
	}
	if code := node.statusWithToken(t, "abcdef.0123456789abcdef"); code != http.StatusUnauthorized {
		t.Errorf("request with an unknown token: HTTP %d, want 401", code)
	}

	out, err = hwToken("create", "--ttl", "2s")
	if err != nil {
		t.Fatalf("hw token create --ttl 2s: %v: %s", err, out)
	}
	short := out[strings.Index(out, "::")+2:]
	eventually(t, time.Minute, "an expired token is refused", func(ctx context.Context) error {
		if code := node.statusWithToken(t, short); code != http.StatusUnauthorized {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
	if list, _ := hwToken("list"); strings.Contains(list, short[:6]) && !strings.Contains(list, "expired") {
		t.Errorf("hw token list shows the expired token without saying so:\n%s", list)
	}

	if out, err := hwToken("delete", id); err != nil {
		t.Fatalf("hw token delete: %v: %s", err, out)
	}
	if code := node.statusWithToken(t, valid); code != http.StatusUnauthorized {
		t.Errorf("request with a deleted token: HTTP %d, want 401", code)
	}
	if out, err := hwToken("delete", id); err == nil || !strings.Contains(out, "no token with ID "+id) {
		t.Errorf("deleting it again: %v %q, want a clear error", err, out)
	}
}

// statusWithToken is the HTTP status of a pod list made with a bearer token.
func (h *hwNode) statusWithToken(t *testing.T, bearer string) int {
	t.Helper()
	cfg := rest.AnonymousClientConfig(h.restConfig(t))
	cfg.BearerToken = bearer
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var code int
	client.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/default/pods").Do(context.Background()).StatusCode(&code)
	return code
}
