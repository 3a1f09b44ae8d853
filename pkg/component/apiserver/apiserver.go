// Package apiserver runs kube-apiserver inside the hw process.
package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/k8srun"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// Config is what kube-apiserver needs, as files and addresses.
type Config struct {
	// Identity names this apiserver among the cluster's (its identity
	// Lease): the node's name.
	Identity string
	// ReadyzChecks are added to /readyz (the embedded etcd's quorum).
	ReadyzChecks  []healthz.HealthChecker
	AdvertiseIP   net.IP
	BindAddress   net.IP
	Port          int
	ServiceCIDR   string
	ClusterDomain string

	EtcdURL                      string
	EtcdCA, EtcdCert, EtcdKey    string
	ClientCA                     string
	ServingCert, ServingKey      string
	KubeletClientCert            string
	KubeletClientKey             string
	KubeletCA                    string
	ServiceAccountKey            string
	ServiceAccountPub            string
	RequestHeaderCA              string
	ProxyClientCert              string
	ProxyClientKey               string
	EncryptionConfig             string
	AuthenticationConfig         string
	AuditPolicy, AuditLog        string
	CertDir                      string
	ProbeCA, ProbeCert, ProbeKey string // admin credentials used to check /readyz

	ExtraArgs []string
}

// Args is hw's own kube-apiserver command line; ExtraArgs go on top.
func (c Config) Args() config.Args {
	return config.Args{
		"advertise-address":                  c.AdvertiseIP.String(),
		"bind-address":                       c.BindAddress.String(),
		"secure-port":                        fmt.Sprint(c.Port),
		"allow-privileged":                   "true",
		"authorization-mode":                 "Node,RBAC",
		"enable-admission-plugins":           "NodeRestriction",
		"enable-bootstrap-token-auth":        "true",
		"authentication-config":              c.AuthenticationConfig,
		"client-ca-file":                     c.ClientCA,
		"tls-cert-file":                      c.ServingCert,
		"tls-private-key-file":               c.ServingKey,
		"kubelet-client-certificate":         c.KubeletClientCert,
		"kubelet-client-key":                 c.KubeletClientKey,
		"kubelet-certificate-authority":      c.KubeletCA,
		"kubelet-preferred-address-types":    "InternalIP,ExternalIP,Hostname",
		"etcd-servers":                       c.EtcdURL,
		"etcd-cafile":                        c.EtcdCA,
		"etcd-certfile":                      c.EtcdCert,
		"etcd-keyfile":                       c.EtcdKey,
		"service-cluster-ip-range":           c.ServiceCIDR,
		"service-node-port-range":            "30000-32767",
		"service-account-issuer":             "https://kubernetes.default.svc." + c.ClusterDomain,
		"service-account-key-file":           c.ServiceAccountPub,
		"service-account-signing-key-file":   c.ServiceAccountKey,
		"api-audiences":                      "https://kubernetes.default.svc." + c.ClusterDomain,
		"requestheader-client-ca-file":       c.RequestHeaderCA,
		"requestheader-allowed-names":        "system:auth-proxy",
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-username-headers":     "X-Remote-User",
		"proxy-client-cert-file":             c.ProxyClientCert,
		"proxy-client-key-file":              c.ProxyClientKey,
		"encryption-provider-config":         c.EncryptionConfig,
		"audit-policy-file":                  c.AuditPolicy,
		"audit-log-path":                     c.AuditLog,
		"audit-log-maxage":                   "30",
		"audit-log-maxbackup":                "10",
		"audit-log-maxsize":                  "100",
		"cert-dir":                           c.CertDir,
		"profiling":                          "false",
	}
}

// New returns the kube-apiserver component; nothing runs until Start. It is
// ready when /readyz is, which includes etcd and the RBAC bootstrap that the
// controller-manager needs before it starts.
func New(cfg Config) lifecycle.Component {
	if cfg.Identity != "" {
		// Upstream names an apiserver's identity Lease after a hash of the
		// host name; cloned machines (and nodes sharing a host in tests)
		// share that and would fight over one Lease. The node name is
		// unique in a cluster. One apiserver per process, so the
		// package-level setting is this one's.
		genericapiserver.SetHostnameFuncForTests(cfg.Identity)
	}
	parse := func(a k8srun.Args) (*k8srun.APIServer, error) {
		s, err := k8srun.NewAPIServer(a)
		if s != nil {
			s.ReadyzChecks = cfg.ReadyzChecks
		}
		return s, err
	}
	return k8srun.NewComponent("kube-apiserver", cfg.Args(), cfg.ExtraArgs, parse, func(ctx context.Context) error {
		client, err := cfg.probeClient()
		if err != nil {
			return err
		}
		return lifecycle.WaitHTTPOK(ctx, client, fmt.Sprintf("https://127.0.0.1:%d/readyz", cfg.Port))
	})
}

// probeClient authenticates as admin and pins the server CA.
func (c Config) probeClient() (*http.Client, error) {
	caPEM, err := os.ReadFile(c.ProbeCA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(c.ProbeCert, c.ProbeKey)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1",
		}},
	}, nil
}
