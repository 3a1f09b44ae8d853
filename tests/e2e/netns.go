//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// network is a set of test hosts: each node has its own network namespace,
// joined to the others through a bridge that lives in a hub namespace with no
// uplink. Every node's default route points into that bridge, so no packet
// can leave the machine.
type network struct {
	id     string
	hub    string
	subnet string // first three octets, e.g. "10.211.7"
	nodes  int
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newNetwork(t *testing.T) *network {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("e2e tests run hw as root in network namespaces: run them as root (make test)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("e2e tests need the ip command: apt-get install -y iproute2")
	}
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	n := &network{id: id, hub: "hwe2e-hub-" + id, subnet: fmt.Sprintf("10.211.%d", os.Getpid()%250)}
	run(t, "ip", "netns", "add", n.hub)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.hub).Run() })
	run(t, "ip", "-n", n.hub, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", n.hub, "link", "set", "br0", "up")
	run(t, "ip", "-n", n.hub, "link", "set", "lo", "up")
	// The hub's own address is every node's resolver (see resolvConf).
	run(t, "ip", "-n", n.hub, "addr", "add", n.resolverIP()+"/24", "dev", "br0")
	return n
}

// resolverIP is the hub's address, the only nameserver of every node: DNS
// queries the cluster forwards stay on the test network, where nothing
// answers them unless a test serves DNS there (serveDNS).
func (n *network) resolverIP() string { return n.subnet + ".1" }

// testNode is one host of the network.
type testNode struct {
	name  string
	netns string
	ip    string
	// resolver is the nameserver in the node's /etc/resolv.conf.
	resolver string
}

func (n *network) addNode(t *testing.T, name string) *testNode {
	t.Helper()
	n.nodes++
	node := &testNode{
		name:     name,
		netns:    fmt.Sprintf("hwe2e-%s-%s", name, n.id),
		ip:       fmt.Sprintf("%s.%d", n.subnet, 10+n.nodes),
		resolver: n.resolverIP(),
	}
	hostEnd := fmt.Sprintf("v%s%d", n.id, n.nodes)
	run(t, "ip", "netns", "add", node.netns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", node.netns).Run() })
	run(t, "ip", "-n", n.hub, "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
	run(t, "ip", "-n", n.hub, "link", "set", hostEnd, "master", "br0", "up")
	run(t, "ip", "-n", node.netns, "link", "set", "lo", "up")
	run(t, "ip", "-n", node.netns, "addr", "add", node.ip+"/24", "dev", "eth0")
	run(t, "ip", "-n", node.netns, "link", "set", "eth0", "up")
	// A default route into the bridge: hw finds its node IP from it, and
	// anything not for another test node dies there.
	run(t, "ip", "-n", node.netns, "route", "add", "default", "dev", "eth0")
	return node
}

// dial opens a connection from inside the node's network namespace. The
// socket is created on an OS thread moved into that namespace; a socket stays
// in the namespace it was created in, whichever thread uses it later.
func (node *testNode) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never unlocked: when this goroutine ends, Go
		// discards the thread instead of reusing it in the wrong namespace.
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+node.netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", node.netns, err)}
			return
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// unusedIP is an address on the test network that no node holds: a server
// there is unreachable, and the packets never leave the test bridge.
func (n *network) unusedIP() string { return fmt.Sprintf("%s.%d", n.subnet, 250) }
