// Package token makes and reads hw's join tokens.
//
// A full token is "K10<sha256 of the cluster CA, hex>::<user>:<secret>" (the
// server's token) or "K10<hash>::<id>.<secret>" (a join token from
// `hw token create`, kept as a Kubernetes bootstrap token). The hash lets a
// joining node check that the server it reached holds the cluster CA before
// it sends the secret; a bare secret is also accepted, without that check.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/hw-k8s/hw/pkg/atomicfile"
)

const prefix = "K10"

// Token is a parsed join token.
type Token struct {
	// CAHash is the hex sha256 of the CA's PEM; empty for a bare secret.
	CAHash   string
	Username string
	Secret   string
}

// String renders the token in its full form.
func (t Token) String() string {
	if t.CAHash == "" {
		return t.Secret
	}
	if t.Username == "" {
		return fmt.Sprintf("%s%s::%s", prefix, t.CAHash, t.Secret)
	}
	return fmt.Sprintf("%s%s::%s:%s", prefix, t.CAHash, t.Username, t.Secret)
}

// Parse reads a full token or a bare secret.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, errors.New("token is empty")
	}
	if !strings.HasPrefix(s, prefix) || !strings.Contains(s, "::") {
		return Token{Secret: s}, nil
	}
	hash, cred, _ := strings.Cut(strings.TrimPrefix(s, prefix), "::")
	if len(hash) != sha256.Size*2 {
		return Token{}, fmt.Errorf("token's CA hash has %d characters, want %d", len(hash), sha256.Size*2)
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return Token{}, errors.New("token's CA hash is not hex")
	}
	if bootstraputil.IsValidBootstrapToken(cred) {
		return Token{CAHash: hash, Secret: cred}, nil
	}
	user, secret, ok := strings.Cut(cred, ":")
	if !ok || user == "" || secret == "" {
		return Token{}, errors.New("token must end in ::<user>:<secret> or ::<id>.<secret>")
	}
	return Token{CAHash: hash, Username: user, Secret: secret}, nil
}

// BootstrapToken is the Kubernetes bootstrap token ("<id>.<secret>") this
// token authenticates as. A join token is one already; the server's token
// maps to one derived from its secret, which the server registers.
func (t Token) BootstrapToken() string {
	if bootstraputil.IsValidBootstrapToken(t.Secret) {
		return t.Secret
	}
	id := sha256.Sum256([]byte("hw-token-id:" + t.Secret))
	secret := sha256.Sum256([]byte("hw-token-secret:" + t.Secret))
	return hex.EncodeToString(id[:])[:6] + "." + hex.EncodeToString(secret[:])[:16]
}

// CAHash is the hash a token carries for the CA with this PEM.
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}

// EnsureServerToken returns the server's join token, creating it on first
// boot. A user-given secret (--token) is used instead of a random one.
func EnsureServerToken(path string, caPEM []byte, userSecret string) (Token, error) {
	if data, err := os.ReadFile(path); err == nil {
		t, err := Parse(string(data))
		if err != nil {
			return Token{}, fmt.Errorf("cannot use %s: %v; delete it to have hw write a new one", path, err)
		}
		if userSecret != "" {
			if given, err := Parse(userSecret); err == nil && given.Secret != t.Secret {
				return Token{}, fmt.Errorf("--token does not match the token this cluster was made with (%s); drop --token or pass that one", path)
			}
		}
		return t, nil
	} else if !os.IsNotExist(err) {
		return Token{}, fmt.Errorf("cannot read %s: %w", path, err)
	}
	secret := userSecret
	if secret != "" {
		given, err := Parse(secret)
		if err != nil {
			return Token{}, fmt.Errorf("--token: %v", err)
		}
		secret = given.Secret
	} else {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return Token{}, err
		}
		secret = hex.EncodeToString(b)
	}
	t := Token{CAHash: CAHash(caPEM), Username: "server", Secret: secret}
	return t, atomicfile.Write(path, []byte(t.String()+"\n"), 0o600)
}
