//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// serveDNS answers DNS on the network's resolver address, inside the hub's
// namespace, as a machine's upstream resolver would: A queries for the names
// in answers get their address, everything else NXDOMAIN. It stands for "the
// node's resolvers" without any query leaving the machine.
func (n *network) serveDNS(t *testing.T, answers map[string]string) {
	t.Helper()
	pc, err := listenUDPIn(n.hub, net.JoinHostPort(n.resolverIP(), "53"))
	if err != nil {
		t.Fatal(err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		reply := new(dns.Msg)
		reply.SetReply(req)
		reply.Rcode = dns.RcodeNameError
		for _, q := range req.Question {
			ip, ok := answers[strings.TrimSuffix(strings.ToLower(q.Name), ".")]
			if !ok {
				continue
			}
			reply.Rcode = dns.RcodeSuccess
			if q.Qtype == dns.TypeA {
				reply.Answer = append(reply.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
			}
		}
		w.WriteMsg(reply)
	})
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
}

// listenUDPIn opens a UDP socket inside a network namespace (see dial).
func listenUDPIn(netns, addr string) (net.PacketConn, error) {
	return inNetns(netns, func() (net.PacketConn, error) { return net.ListenPacket("udp", addr) })
}

// listenTCPIn opens a TCP listener inside a network namespace (see dial).
func listenTCPIn(netns, addr string) (net.Listener, error) {
	return inNetns(netns, func() (net.Listener, error) { return net.Listen("tcp", addr) })
}

// inNetns runs open on an OS thread moved into the network namespace; a
// socket stays in the namespace it was made in, whichever thread uses it.
func inNetns[T any](netns string, open func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is discarded
		fd, err := unix.Open("/run/netns/"+netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", netns, err)}
			return
		}
		v, err := open()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// serveS3 runs an S3-compatible store (in memory) on the network's resolver
// address, port 9000, inside the hub's namespace, with the bucket named: a
// stand-in for a backup server on the site's network. It returns HOST:PORT.
func (n *network) serveS3(t *testing.T, bucket string) string {
	t.Helper()
	addr := net.JoinHostPort(n.resolverIP(), "9000")
	ln, err := listenTCPIn(n.hub, addr)
	if err != nil {
		t.Fatal(err)
	}
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gofakes3.New(backend).Server(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return addr
}
