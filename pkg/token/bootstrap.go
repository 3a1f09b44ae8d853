package token

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/hw-k8s/hw/pkg/rbac"
)

// JoinToken is one join token kept as a Kubernetes bootstrap token.
type JoinToken struct {
	ID          string
	Description string
	// Expires is zero for a token that never expires.
	Expires time.Time
}

// Create makes a bootstrap token that lives for ttl (0: forever) and returns
// it in full form, pinned to the CA with caPEM.
func Create(ctx context.Context, client kubernetes.Interface, caPEM []byte, ttl time.Duration, description string, now time.Time) (Token, JoinToken, error) {
	raw, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return Token{}, JoinToken{}, err
	}
	id, secret, _ := strings.Cut(raw, ".")
	jt := JoinToken{ID: id, Description: description}
	data := map[string]string{
		bootstrapapi.BootstrapTokenIDKey:               id,
		bootstrapapi.BootstrapTokenSecretKey:           secret,
		bootstrapapi.BootstrapTokenUsageAuthentication: "true",
		bootstrapapi.BootstrapTokenExtraGroupsKey:      rbac.AgentGroup,
	}
	if description != "" {
		data[bootstrapapi.BootstrapTokenDescriptionKey] = description
	}
	if ttl > 0 {
		jt.Expires = now.Add(ttl).UTC().Truncate(time.Second)
		data[bootstrapapi.BootstrapTokenExpirationKey] = jt.Expires.Format(time.RFC3339)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: data,
	}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return Token{}, JoinToken{}, fmt.Errorf("creating the token: %w", err)
	}
	return Token{CAHash: CAHash(caPEM), Secret: raw}, jt, nil
}

// List returns the cluster's join tokens, soonest to expire first.
func List(ctx context.Context, client kubernetes.Interface) ([]JoinToken, error) {
	secrets, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	var out []JoinToken
	for _, s := range secrets.Items {
		jt := JoinToken{
			ID:          string(s.Data[bootstrapapi.BootstrapTokenIDKey]),
			Description: string(s.Data[bootstrapapi.BootstrapTokenDescriptionKey]),
		}
		if exp := string(s.Data[bootstrapapi.BootstrapTokenExpirationKey]); exp != "" {
			jt.Expires, _ = time.Parse(time.RFC3339, exp)
		}
		out = append(out, jt)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Expires, out[j].Expires
		if a.IsZero() != b.IsZero() {
			return !a.IsZero()
		}
		if !a.Equal(b) {
			return a.Before(b)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Delete removes a join token; a token that is not there is an error.
func Delete(ctx context.Context, client kubernetes.Interface, id string) error {
	id = strings.SplitN(id, ".", 2)[0] // a whole id.secret is accepted too
	if !bootstraputil.IsValidBootstrapTokenID(id) {
		return fmt.Errorf("%q is not a token ID (6 characters a-z, 0-9; see 'hw token list')", id)
	}
	err := client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, bootstraputil.BootstrapTokenSecretName(id), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("no token with ID %s (see 'hw token list')", id)
	}
	return err
}

// EnsureServerBootstrap registers the bootstrap token the server's own token
// maps to (see Token.BootstrapToken); it never expires.
func EnsureServerBootstrap(ctx context.Context, client kubernetes.Interface, server Token) error {
	id, secret, _ := strings.Cut(server.BootstrapToken(), ".")
	s := corev1ac.Secret(bootstraputil.BootstrapTokenSecretName(id), metav1.NamespaceSystem).
		WithType(bootstrapapi.SecretTypeBootstrapToken).
		WithStringData(map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               id,
			bootstrapapi.BootstrapTokenSecretKey:           secret,
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			// The server token also joins servers; join tokens only agents.
			bootstrapapi.BootstrapTokenExtraGroupsKey: rbac.AgentGroup + "," + rbac.ServerGroup,
			bootstrapapi.BootstrapTokenDescriptionKey: "the server's token (<data-dir>/server/token)",
		})
	_, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Apply(ctx, s, metav1.ApplyOptions{FieldManager: "hw", Force: true})
	if err != nil {
		return fmt.Errorf("registering the server's token: %w", err)
	}
	return nil
}
