package token

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/hw-k8s/hw/pkg/rbac"
)

func TestJoinTokenLifecycle(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	ca := []byte("-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n")

	tok, jt, err := Create(ctx, client, ca, 24*time.Hour, "for the garage node", now)
	if err != nil {
		t.Fatal(err)
	}
	// The printed token pins the CA and parses back to the same bootstrap token.
	parsed, err := Parse(tok.String())
	if err != nil || parsed.CAHash != CAHash(ca) || parsed.Secret != tok.Secret || !strings.HasPrefix(tok.Secret, jt.ID+".") {
		t.Fatalf("token %q parses to %+v, %v", tok, parsed, err)
	}
	s, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, "bootstrap-token-"+jt.ID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != bootstrapapi.SecretTypeBootstrapToken || s.StringData[bootstrapapi.BootstrapTokenExpirationKey] != "2026-11-23T12:00:00Z" ||
		s.StringData[bootstrapapi.BootstrapTokenExtraGroupsKey] != rbac.AgentGroup || s.StringData[bootstrapapi.BootstrapTokenUsageAuthentication] != "true" {
		t.Errorf("secret %+v", s)
	}

	if _, _, err := Create(ctx, client, ca, 0, "", now); err != nil {
		t.Fatal(err)
	}
	// The fake client keeps StringData as given; the apiserver would fold it into Data.
	for _, item := range mustList(t, client) {
		for k, v := range item.StringData {
			if item.Data == nil {
				item.Data = map[string][]byte{}
			}
			item.Data[k] = []byte(v)
		}
		client.CoreV1().Secrets(metav1.NamespaceSystem).Update(ctx, &item, metav1.UpdateOptions{})
	}
	list, err := List(ctx, client)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v, %v", list, err)
	}
	if list[0].ID != jt.ID || list[0].Description != "for the garage node" || !list[1].Expires.IsZero() {
		t.Errorf("list order or fields: %+v", list)
	}

	if err := Delete(ctx, client, jt.ID); err != nil {
		t.Fatal(err)
	}
	if err := Delete(ctx, client, jt.ID); err == nil || !strings.Contains(err.Error(), "no token with ID") {
		t.Errorf("deleting it twice: %v", err)
	}
	if err := Delete(ctx, client, "NOT-AN-ID"); err == nil || !strings.Contains(err.Error(), "not a token ID") {
		t.Errorf("bad ID: %v", err)
	}
}

func mustList(t *testing.T, client *fake.Clientset) []corev1.Secret {
	t.Helper()
	l, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}
