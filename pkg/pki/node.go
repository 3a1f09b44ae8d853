package pki

import (
	"net"
	"path/filepath"
	"time"
)

// NodePKI is a node's kubelet identity: the client certificate it talks to
// the apiserver with (it can act only as itself: Node authorizer and
// NodeRestriction) and the serving certificate the apiserver verifies when it
// reaches the kubelet for logs, exec and port-forward.
type NodePKI struct {
	KubeletClient  *Leaf
	KubeletServing *Leaf
}

// Base names of a node's kubelet certificates, the same on servers and agents.
const (
	KubeletClientName  = "client-kubelet"
	KubeletServingName = "serving-kubelet"
)

// NodeLayout is where a node keeps its kubelet certificates in dir.
func NodeLayout(dir string) *NodePKI {
	leaf := func(name string) *Leaf {
		return &Leaf{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key")}
	}
	return &NodePKI{KubeletClient: leaf(KubeletClientName), KubeletServing: leaf(KubeletServingName)}
}

// EnsureNode issues or reuses the node's kubelet certificates in dir.
func EnsureNode(dir string, clientCA, serverCA *Authority, nodeName string, nodeIP net.IP, now time.Time) (*NodePKI, error) {
	client, err := EnsureLeaf(dir, clientCA, LeafSpec{
		Name: KubeletClientName, CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}, Usage: ClientAuth,
	}, now)
	if err != nil {
		return nil, err
	}
	serving, err := EnsureLeaf(dir, serverCA, LeafSpec{
		Name: KubeletServingName, CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}, Usage: ServerAuth,
		DNSNames: []string{nodeName, "localhost"}, IPs: []net.IP{nodeIP, net.IPv4(127, 0, 0, 1)},
	}, now)
	if err != nil {
		return nil, err
	}
	return &NodePKI{KubeletClient: client, KubeletServing: serving}, nil
}
