package pki

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// ServerNames are the names and addresses the server's certificates must carry.
type ServerNames struct {
	NodeName       string
	Hostname       string
	NodeIP         net.IP
	AdvertiseIP    net.IP
	FirstServiceIP net.IP
	ClusterDomain  string
	// ExtraSANs are the user's --tls-san values: DNS names or IPs.
	ExtraSANs []string
}

// MetricsServiceName is the name the apiserver checks on the metrics API's
// serving certificate: its Service, kube-system/metrics-server.
const MetricsServiceName = "metrics-server.kube-system.svc"

// ServerPKI is every credential the control plane uses, as files.
type ServerPKI struct {
	ServerCA, ClientCA, RequestHeaderCA, EtcdServerCA, EtcdPeerCA *Authority

	APIServerServing       *Leaf
	APIServerKubeletClient *Leaf
	Admin                  *Leaf
	ControllerManager      *Leaf
	Scheduler              *Leaf
	KubeProxy              *Leaf
	Flannel                *Leaf // every node's flannel; RBAC: rbac.FlannelUser
	FrontProxyClient       *Leaf
	MetricsServing         *Leaf // the metrics.k8s.io API hw serves
	EtcdServer             *Leaf
	EtcdPeer               *Leaf
	EtcdClient             *Leaf

	// Service-account token signing key pair.
	ServiceAccountKey, ServiceAccountPub string
}

// caSpec is one CA of the server, as data.
type caSpec struct {
	dest       **Authority
	name       string
	commonName string
}

// leafSpec ties a certificate to the CA that signs it.
type leafSpec struct {
	dest *(*Leaf)
	ca   **Authority
	spec LeafSpec
}

// caEntry and leafEntry place a CA or a leaf in a folder.
type caEntry struct {
	caSpec
	dir string
}

type leafEntry struct {
	leafSpec
	dir string
}

// serverTable is the server's PKI as data: every CA and leaf, the folder it
// lives in and the field of p it fills.
func serverTable(p *ServerPKI, dir string, names ServerNames) ([]caEntry, []leafEntry) {
	etcdDir := filepath.Join(dir, "etcd")
	cas := []caEntry{
		{caSpec{&p.ServerCA, "server-ca", "hw-server-ca"}, dir},
		{caSpec{&p.ClientCA, "client-ca", "hw-client-ca"}, dir},
		{caSpec{&p.RequestHeaderCA, "request-header-ca", "hw-request-header-ca"}, dir},
		{caSpec{&p.EtcdServerCA, "server-ca", "hw-etcd-server-ca"}, etcdDir},
		{caSpec{&p.EtcdPeerCA, "peer-ca", "hw-etcd-peer-ca"}, etcdDir},
	}
	dns, ips := apiServerSANs(names)
	etcdIPs := append([]net.IP{net.IPv4(127, 0, 0, 1)}, names.NodeIP)
	leaves := []leafEntry{
		{leafSpec{&p.APIServerServing, &p.ServerCA, LeafSpec{Name: "serving-kube-apiserver", CommonName: "kube-apiserver", Usage: ServerAuth, DNSNames: dns, IPs: ips}}, dir},
		{leafSpec{&p.APIServerKubeletClient, &p.ClientCA, LeafSpec{Name: "client-kube-apiserver", CommonName: "system:kube-apiserver", Organization: []string{"system:masters"}, Usage: ClientAuth}}, dir},
		{leafSpec{&p.Admin, &p.ClientCA, LeafSpec{Name: "client-admin", CommonName: "system:admin", Organization: []string{"system:masters"}, Usage: ClientAuth}}, dir},
		{leafSpec{&p.ControllerManager, &p.ClientCA, LeafSpec{Name: "client-controller", CommonName: "system:kube-controller-manager", Usage: ClientAuth}}, dir},
		{leafSpec{&p.Scheduler, &p.ClientCA, LeafSpec{Name: "client-scheduler", CommonName: "system:kube-scheduler", Usage: ClientAuth}}, dir},
		{leafSpec{&p.KubeProxy, &p.ClientCA, LeafSpec{Name: "client-kube-proxy", CommonName: "system:kube-proxy", Usage: ClientAuth}}, dir},
		{leafSpec{&p.Flannel, &p.ClientCA, LeafSpec{Name: "client-flannel", CommonName: "system:hw-flannel", Usage: ClientAuth}}, dir},
		{leafSpec{&p.FrontProxyClient, &p.RequestHeaderCA, LeafSpec{Name: "client-auth-proxy", CommonName: "system:auth-proxy", Usage: ClientAuth}}, dir},
		{leafSpec{&p.MetricsServing, &p.ServerCA, LeafSpec{Name: "serving-metrics", CommonName: "hw-metrics", Usage: ServerAuth,
			DNSNames: []string{MetricsServiceName}, IPs: []net.IP{names.NodeIP}}}, dir},
		{leafSpec{&p.EtcdServer, &p.EtcdServerCA, LeafSpec{Name: "server-client", CommonName: "etcd-server", Usage: ServerAuth | ClientAuth, DNSNames: []string{"localhost", names.NodeName}, IPs: etcdIPs}}, etcdDir},
		{leafSpec{&p.EtcdPeer, &p.EtcdPeerCA, LeafSpec{Name: "peer-server-client", CommonName: "etcd-peer", Usage: ServerAuth | ClientAuth, DNSNames: []string{"localhost", names.NodeName}, IPs: etcdIPs}}, etcdDir},
		{leafSpec{&p.EtcdClient, &p.EtcdServerCA, LeafSpec{Name: "client", CommonName: "etcd-client", Usage: ClientAuth}}, etcdDir},
	}
	return cas, leaves
}

// signingKeyName is the service-account key pair's base name.
const signingKeyName = "service"

// ServerLayout is where EnsureServer keeps each file in dir: the paths of a
// ServerPKI, without reading or writing anything. A boot plan is built from
// it before the files exist.
func ServerLayout(dir string) *ServerPKI {
	p := &ServerPKI{}
	cas, leaves := serverTable(p, dir, ServerNames{})
	for _, c := range cas {
		*c.dest = &Authority{CertFile: filepath.Join(c.dir, c.name+".crt"), KeyFile: filepath.Join(c.dir, c.name+".key")}
	}
	for _, l := range leaves {
		*l.dest = &Leaf{CertFile: filepath.Join(l.dir, l.spec.Name+".crt"), KeyFile: filepath.Join(l.dir, l.spec.Name+".key")}
	}
	p.ServiceAccountKey, p.ServiceAccountPub = signingKeyFiles(dir, signingKeyName)
	return p
}

// EnsureServer makes sure dir holds every CA and certificate the control
// plane needs, issuing what is missing, changed or near expiry. Re-running it
// on a complete dir changes nothing.
func EnsureServer(dir string, names ServerNames, now time.Time) (*ServerPKI, error) {
	p := &ServerPKI{}
	cas, leaves := serverTable(p, dir, names)
	for _, c := range cas {
		ca, err := EnsureCA(c.dir, c.name, c.commonName)
		if err != nil {
			return nil, err
		}
		*c.dest = ca
	}
	for _, l := range leaves {
		leaf, err := EnsureLeaf(l.dir, *l.ca, l.spec, now)
		if err != nil {
			return nil, err
		}
		*l.dest = leaf
	}

	var err error
	p.ServiceAccountKey, p.ServiceAccountPub, err = EnsureSigningKey(dir, signingKeyName)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Issued lists the certificates this run wrote anew, for the log.
func (p *ServerPKI) Issued() []string {
	var out []string
	for _, l := range []*Leaf{p.APIServerServing, p.APIServerKubeletClient, p.Admin, p.ControllerManager,
		p.Scheduler, p.KubeProxy, p.Flannel, p.FrontProxyClient, p.MetricsServing, p.EtcdServer, p.EtcdPeer, p.EtcdClient} {
		if l.Issued {
			out = append(out, l.CertFile)
		}
	}
	return out
}

// apiServerSANs are the names clients may use to reach the apiserver.
func apiServerSANs(n ServerNames) ([]string, []net.IP) {
	dns := []string{
		"kubernetes",
		"kubernetes.default",
		"kubernetes.default.svc",
		fmt.Sprintf("kubernetes.default.svc.%s", n.ClusterDomain),
		"localhost",
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), n.FirstServiceIP}
	addIP := func(ip net.IP) {
		for _, have := range ips {
			if have.Equal(ip) {
				return
			}
		}
		ips = append(ips, ip)
	}
	addDNS := func(name string) {
		name = strings.ToLower(name)
		for _, have := range dns {
			if have == name {
				return
			}
		}
		dns = append(dns, name)
	}
	for _, ip := range []net.IP{n.NodeIP, n.AdvertiseIP} {
		if ip != nil {
			addIP(ip)
		}
	}
	for _, name := range []string{n.NodeName, n.Hostname} {
		if name != "" {
			addDNS(name)
		}
	}
	for _, san := range n.ExtraSANs {
		if ip := net.ParseIP(san); ip != nil {
			addIP(ip)
		} else if san != "" {
			addDNS(san)
		}
	}
	return dns, ips
}
