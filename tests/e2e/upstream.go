//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"

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
	type result struct {
		pc  net.PacketConn
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
		pc, err := net.ListenPacket("udp", addr)
		ch <- result{pc, err}
	}()
	r := <-ch
	return r.pc, r.err
}
