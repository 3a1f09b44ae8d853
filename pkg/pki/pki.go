// Package pki makes and keeps hw's certificate authorities, certificates,
// keys and kubeconfigs.
//
// Every operation is an idempotent "ensure": it loads what is on disk, checks
// it is still fit (right CA, right names, not near expiry) and only writes
// when it is not. Files are written atomically; keys are mode 0600.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hw-k8s/hw/pkg/atomicfile"
)

// Lifetimes of what hw issues.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	LeafLifetime = 365 * 24 * time.Hour
	// RenewBefore: a leaf that expires sooner than this is re-issued on start.
	RenewBefore = 90 * 24 * time.Hour
	// backdate absorbs small clock differences between nodes.
	backdate = time.Hour
)

// Authority is a CA whose key hw holds.
type Authority struct {
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertFile string
	KeyFile  string
}

// CertPEM returns the CA certificate in PEM form.
func (a *Authority) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Cert.Raw})
}

// Usage says what a leaf certificate is for.
type Usage int

const (
	ClientAuth Usage = 1 << iota
	ServerAuth
)

// LeafSpec describes one certificate to be issued by a CA.
type LeafSpec struct {
	// Name is the file base name: Name.crt and Name.key in the directory.
	Name         string
	CommonName   string
	Organization []string
	Usage        Usage
	DNSNames     []string
	IPs          []net.IP
}

// Leaf is an issued certificate on disk.
type Leaf struct {
	CertFile string
	KeyFile  string
	Cert     *x509.Certificate
	Key      crypto.Signer
	// Issued is true when this call wrote a new certificate.
	Issued bool
}

// FileError names the file that could not be used and how to fix it.
type FileError struct {
	Path string
	Err  error
	Fix  string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("cannot use %s: %v; %s", e.Path, e.Err, e.Fix)
}

func (e *FileError) Unwrap() error { return e.Err }

// EnsureCA loads the CA Name.crt/Name.key from dir, or creates it if neither exists.
func EnsureCA(dir, name, commonName string) (*Authority, error) {
	certFile := filepath.Join(dir, name+".crt")
	keyFile := filepath.Join(dir, name+".key")
	fix := "restore it from a backup of the data dir; a new CA would break every node and kubeconfig of this cluster"
	certExists, keyExists := exists(certFile), exists(keyFile)
	if certExists || keyExists {
		cert, err := readCert(certFile)
		if err != nil {
			return nil, &FileError{certFile, err, fix}
		}
		key, err := readKey(keyFile)
		if err != nil {
			return nil, &FileError{keyFile, err, fix}
		}
		if !publicKeysEqual(cert.PublicKey, key.Public()) {
			return nil, &FileError{keyFile, errors.New("key does not belong to " + certFile), fix}
		}
		return &Authority{Cert: cert, Key: key, CertFile: certFile, KeyFile: keyFile}, nil
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", commonName, now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: %w", name, err)
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writeKey(keyFile, key); err != nil {
		return nil, err
	}
	if err := writeCert(certFile, cert); err != nil {
		return nil, err
	}
	return &Authority{Cert: cert, Key: key, CertFile: certFile, KeyFile: keyFile}, nil
}

// EnsureLeaf makes sure dir holds a certificate for spec, signed by ca, valid
// for at least RenewBefore past now and carrying every wanted name. Otherwise
// it issues a new one. An existing key is kept.
func EnsureLeaf(dir string, ca *Authority, spec LeafSpec, now time.Time) (*Leaf, error) {
	leaf := &Leaf{
		CertFile: filepath.Join(dir, spec.Name+".crt"),
		KeyFile:  filepath.Join(dir, spec.Name+".key"),
	}
	fix := "delete it and restart hw to have a new one issued"
	var key crypto.Signer
	if exists(leaf.KeyFile) {
		k, err := readKey(leaf.KeyFile)
		if err != nil {
			return nil, &FileError{leaf.KeyFile, err, fix}
		}
		key = k
	}
	if key != nil && exists(leaf.CertFile) {
		cert, err := readCert(leaf.CertFile)
		if err != nil {
			return nil, &FileError{leaf.CertFile, err, fix}
		}
		if fits(cert, key, ca, spec, now) {
			leaf.Cert, leaf.Key = cert, key
			return leaf, nil
		}
	}
	if key == nil {
		k, err := newKey()
		if err != nil {
			return nil, err
		}
		key = k
		if err := writeKey(leaf.KeyFile, key); err != nil {
			return nil, err
		}
	}
	cert, err := Issue(ca, spec, key.Public(), now)
	if err != nil {
		return nil, err
	}
	if err := writeCert(leaf.CertFile, cert); err != nil {
		return nil, err
	}
	leaf.Cert, leaf.Key, leaf.Issued = cert, key, true
	return leaf, nil
}

// Issue signs a certificate for pub as spec describes.
func Issue(ca *Authority, spec LeafSpec, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	notAfter := now.Add(LeafLifetime)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
	}
	if spec.Usage&ClientAuth != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if spec.Usage&ServerAuth != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issuing %s: %w", spec.Name, err)
	}
	return x509.ParseCertificate(der)
}

// fits reports whether an existing certificate can be kept.
func fits(cert *x509.Certificate, key crypto.Signer, ca *Authority, spec LeafSpec, now time.Time) bool {
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return false
	}
	if cert.CheckSignatureFrom(ca.Cert) != nil {
		return false
	}
	if now.Add(RenewBefore).After(cert.NotAfter) {
		return false
	}
	if cert.Subject.CommonName != spec.CommonName || !slices.Equal(cert.Subject.Organization, spec.Organization) {
		return false
	}
	for _, n := range spec.DNSNames {
		if !slices.Contains(cert.DNSNames, n) {
			return false
		}
	}
	for _, ip := range spec.IPs {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func newKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKeyPEM(data)
}

// ParseKeyPEM parses an EC, PKCS#1 or PKCS#8 private key.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM private key")
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New("unsupported private key type")
		}
		return s, nil
	}
	return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
}

// KeyPEM encodes a private key.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func writeKey(path string, key crypto.Signer) error {
	data, err := KeyPEM(key)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

func writeCert(path string, cert *x509.Certificate) error {
	return atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
}

// EnsureSigningKey loads or creates the service-account signing key pair
// (NAME.key private, NAME.pub public).
func EnsureSigningKey(dir, name string) (keyFile, pubFile string, err error) {
	keyFile, pubFile = signingKeyFiles(dir, name)
	var key crypto.Signer
	if exists(keyFile) {
		if key, err = readKey(keyFile); err != nil {
			return "", "", &FileError{keyFile, err, "restore it from a backup; a new key invalidates every service-account token"}
		}
	} else {
		if key, err = newKey(); err != nil {
			return "", "", err
		}
		if err = writeKey(keyFile, key); err != nil {
			return "", "", err
		}
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", "", err
	}
	err = atomicfile.Write(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	return keyFile, pubFile, err
}

// signingKeyFiles are the private and public halves of a signing key pair.
func signingKeyFiles(dir, name string) (keyFile, pubFile string) {
	return filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
}
