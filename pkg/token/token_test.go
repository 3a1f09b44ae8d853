package token

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServerTokenIsPrivateStableAndPinsCA(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server", "token")
	ca := []byte("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
	first, err := EnsureServerToken(path, ca, "")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %o, want 600", info.Mode().Perm())
	}
	if first.CAHash != CAHash(ca) || len(first.Secret) < 32 {
		t.Errorf("token %v: want the CA's hash and a 128-bit secret", first)
	}
	again, err := EnsureServerToken(path, ca, "")
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("second start made a new token: %v then %v", first, again)
	}
	if _, err := EnsureServerToken(path, ca, "other-secret"); err == nil || !strings.Contains(err.Error(), "--token does not match") {
		t.Errorf("a different --token on restart: got %v, want a mismatch error", err)
	}
}

func TestUserSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	tok, err := EnsureServerToken(path, []byte("ca"), "my-secret")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Secret != "my-secret" || !strings.HasPrefix(tok.String(), "K10") {
		t.Errorf("token %q: want the user's secret in full form", tok)
	}
}

func TestParse(t *testing.T) {
	full := Token{CAHash: CAHash([]byte("ca")), Username: "server", Secret: "s3cret"}
	got, err := Parse(full.String())
	if err != nil || got != full {
		t.Errorf("round trip: got %v, %v; want %v", got, err, full)
	}
	join := Token{CAHash: CAHash([]byte("ca")), Secret: "abcdef.0123456789abcdef"}
	if got, err := Parse(join.String()); err != nil || got != join || !strings.HasSuffix(join.String(), "::abcdef.0123456789abcdef") {
		t.Errorf("join token round trip: %q -> %v, %v", join, got, err)
	}
	bare, err := Parse("just-a-secret")
	if err != nil || bare.CAHash != "" || bare.Secret != "just-a-secret" {
		t.Errorf("bare secret: got %v, %v", bare, err)
	}
	for _, bad := range []string{"", "K10abc::server:x", "K10" + strings.Repeat("z", 64) + "::server:x", "K10" + strings.Repeat("a", 64) + "::nosecret"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted a malformed token", bad)
		}
	}
}
