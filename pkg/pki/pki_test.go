package pki

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

func testNames() ServerNames {
	return ServerNames{
		NodeName:       "node-a",
		Hostname:       "Node-A",
		NodeIP:         net.ParseIP("192.0.2.10").To4(),
		FirstServiceIP: net.ParseIP("10.43.0.1").To4(),
		ClusterDomain:  "example.internal",
		ExtraSANs:      []string{"hw.example.org", "198.51.100.7"},
	}
}

func verifyChain(t *testing.T, leaf *Leaf, ca *Authority, usage x509.ExtKeyUsage) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Errorf("%s does not verify against %s for usage %v: %v", leaf.CertFile, ca.CertFile, usage, err)
	}
}

func TestEnsureServerChainsAndUsages(t *testing.T) {
	dir := t.TempDir()
	p, err := EnsureServer(dir, testNames(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, p.APIServerServing, p.ServerCA, x509.ExtKeyUsageServerAuth)
	for _, l := range []*Leaf{p.Admin, p.APIServerKubeletClient, p.ControllerManager, p.Scheduler, p.KubeProxy, p.Flannel} {
		verifyChain(t, l, p.ClientCA, x509.ExtKeyUsageClientAuth)
	}
	verifyChain(t, p.FrontProxyClient, p.RequestHeaderCA, x509.ExtKeyUsageClientAuth)
	verifyChain(t, p.EtcdServer, p.EtcdServerCA, x509.ExtKeyUsageServerAuth)
	verifyChain(t, p.EtcdClient, p.EtcdServerCA, x509.ExtKeyUsageClientAuth)
	verifyChain(t, p.EtcdPeer, p.EtcdPeerCA, x509.ExtKeyUsageServerAuth)
	verifyChain(t, p.EtcdPeer, p.EtcdPeerCA, x509.ExtKeyUsageClientAuth)

	// A client certificate must not be usable to serve, nor a serving one as a client.
	pool := x509.NewCertPool()
	pool.AddCert(p.ClientCA.Cert)
	if _, err := p.Admin.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("admin client certificate verifies for server auth")
	}
	if !slices.Contains(p.Admin.Cert.Subject.Organization, "system:masters") {
		t.Errorf("admin organization = %v, want system:masters", p.Admin.Cert.Subject.Organization)
	}
	if !p.ServerCA.Cert.IsCA || p.ServerCA.Cert.NotAfter.Sub(p.ServerCA.Cert.NotBefore) < 9*365*24*time.Hour {
		t.Errorf("server CA: IsCA=%v lifetime=%s; want a CA of about 10 years", p.ServerCA.Cert.IsCA, p.ServerCA.Cert.NotAfter.Sub(p.ServerCA.Cert.NotBefore))
	}
	if life := p.Admin.Cert.NotAfter.Sub(p.Admin.Cert.NotBefore); life > 366*24*time.Hour+2*time.Hour || life < 364*24*time.Hour {
		t.Errorf("leaf lifetime = %s, want about one year", life)
	}
}

func TestAPIServerServingSANs(t *testing.T) {
	p, err := EnsureServer(t.TempDir(), testNames(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert := p.APIServerServing.Cert
	for _, name := range []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.example.internal", "localhost", "node-a", "hw.example.org"} {
		if err := cert.VerifyHostname(name); err != nil {
			t.Errorf("serving cert does not cover %q: %v", name, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "10.43.0.1", "192.0.2.10", "198.51.100.7"} {
		if err := cert.VerifyHostname(ip); err != nil {
			t.Errorf("serving cert does not cover %s: %v", ip, err)
		}
	}
	if err := cert.VerifyHostname("not-this-host"); err == nil {
		t.Error("serving cert covers a name it should not")
	}
}

func TestEnsureServerIsIdempotentAndKeysArePrivate(t *testing.T) {
	dir := t.TempDir()
	first, err := EnsureServer(dir, testNames(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Issued()) != 12 {
		t.Errorf("first run issued %d certificates, want 12", len(first.Issued()))
	}
	second, err := EnsureServer(dir, testNames(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if issued := second.Issued(); len(issued) != 0 {
		t.Errorf("second run issued %v, want nothing", issued)
	}
	if !second.ServerCA.Cert.Equal(first.ServerCA.Cert) || !second.Admin.Cert.Equal(first.Admin.Cert) {
		t.Error("second run changed certificates")
	}
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if filepath.Ext(path) == ".key" && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", path, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNearExpiryLeafIsRenewedAndCAKept(t *testing.T) {
	dir := t.TempDir()
	issuedAt := time.Now().Add(-300 * 24 * time.Hour) // expires in ~65 days: inside RenewBefore
	old, err := EnsureServer(dir, testNames(), issuedAt)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := EnsureServer(dir, testNames(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !renewed.ServerCA.Cert.Equal(old.ServerCA.Cert) || !renewed.ClientCA.Cert.Equal(old.ClientCA.Cert) {
		t.Fatal("renewal replaced a CA")
	}
	if !renewed.Admin.Issued || !renewed.APIServerServing.Issued {
		t.Fatal("near-expiry leaves were not re-issued")
	}
	if !renewed.Admin.Cert.NotAfter.After(old.Admin.Cert.NotAfter.Add(200 * 24 * time.Hour)) {
		t.Errorf("renewed admin cert expires %s, old %s", renewed.Admin.Cert.NotAfter, old.Admin.Cert.NotAfter)
	}
	verifyChain(t, renewed.Admin, renewed.ClientCA, x509.ExtKeyUsageClientAuth)
}

func TestNewSANReissuesServingCert(t *testing.T) {
	dir := t.TempDir()
	if _, err := EnsureServer(dir, testNames(), time.Now()); err != nil {
		t.Fatal(err)
	}
	names := testNames()
	names.ExtraSANs = append(names.ExtraSANs, "new.example.org")
	p, err := EnsureServer(dir, names, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !p.APIServerServing.Issued || p.APIServerServing.Cert.VerifyHostname("new.example.org") != nil {
		t.Error("serving cert was not re-issued for a new --tls-san")
	}
	if p.Admin.Issued {
		t.Error("admin cert was re-issued although nothing about it changed")
	}
}

func TestCorruptFilesAreNamed(t *testing.T) {
	dir := t.TempDir()
	if _, err := EnsureServer(dir, testNames(), time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"client-admin.crt", "server-ca.key"} {
		path := filepath.Join(dir, name)
		orig, _ := os.ReadFile(path)
		if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := EnsureServer(dir, testNames(), time.Now())
		var fe *FileError
		if !errors.As(err, &fe) || fe.Path != path {
			t.Errorf("corrupt %s: got error %v, want a FileError naming it", name, err)
		}
		os.WriteFile(path, orig, 0o600)
	}
}

func TestWriteKubeconfigMode(t *testing.T) {
	dir := t.TempDir()
	p, err := EnsureServer(dir, testNames(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out", "admin.yaml")
	if err := WriteKubeconfig(path, "https://127.0.0.1:6443", p.ServerCA, p.Admin, 0o640); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 {
		t.Errorf("kubeconfig mode %o, want 640", info.Mode().Perm())
	}
}

// The boot plan is built from ServerLayout and NodeLayout before any file
// exists: they must name exactly the files EnsureServer and EnsureNode write.
func TestLayoutsNameTheFilesEnsureWrites(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	got, err := EnsureServer(dir, ServerNames{NodeName: "n1", NodeIP: net.IPv4(10, 0, 0, 1), ClusterDomain: "cluster.local",
		FirstServiceIP: net.IPv4(10, 43, 0, 1)}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := ServerLayout(dir)
	gv, wv := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := 0; i < gv.NumField(); i++ {
		name := gv.Type().Field(i).Name
		switch g := gv.Field(i).Interface().(type) {
		case *Authority:
			w := wv.Field(i).Interface().(*Authority)
			if g.CertFile != w.CertFile || g.KeyFile != w.KeyFile {
				t.Errorf("%s: written %s/%s, layout says %s/%s", name, g.CertFile, g.KeyFile, w.CertFile, w.KeyFile)
			}
		case *Leaf:
			w := wv.Field(i).Interface().(*Leaf)
			if g.CertFile != w.CertFile || g.KeyFile != w.KeyFile {
				t.Errorf("%s: written %s/%s, layout says %s/%s", name, g.CertFile, g.KeyFile, w.CertFile, w.KeyFile)
			}
		case string:
			if w := wv.Field(i).String(); g != w {
				t.Errorf("%s: written %s, layout says %s", name, g, w)
			}
		}
	}
	node, err := EnsureNode(filepath.Join(dir, "agent"), got.ClientCA, got.ServerCA, "n1", net.IPv4(10, 0, 0, 1), now)
	if err != nil {
		t.Fatal(err)
	}
	nl := NodeLayout(filepath.Join(dir, "agent"))
	if node.KubeletClient.CertFile != nl.KubeletClient.CertFile || node.KubeletServing.KeyFile != nl.KubeletServing.KeyFile {
		t.Errorf("node layout %+v does not match %+v", nl, node)
	}
}
