package dns

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
)

// The node answers for the cluster DNS address itself: the address sits on
// the loopback interface (labelled AddressLabel; not every kernel has dummy
// interfaces), and the DNS packets to and from it skip connection
// tracking. Untracked packets never reach kube-proxy's NAT rules (which would
// send them to the kube-dns Service's endpoints; it has none) nor its
// "no endpoints" REJECT rules, which match new connections only. The
// NodeLocal DNSCache add-on works the same way.
const (
	// AddressLabel marks the cluster DNS address on lo, for clean-up.
	AddressLabel = "lo:hw-dns"
	// chain is the raw-table chain of the NOTRACK rules (iptables mode).
	chain = "HW-DNS"
	// nftTable is the table of the same rules when kube-proxy uses nftables.
	nftTable = "hw-dns"
)

// hostNetwork puts and removes the address and the rules.
type hostNetwork struct {
	ip  net.IP
	nft bool
}

func (h hostNetwork) ensure() error {
	if err := h.ensureAddress(); err != nil {
		return fmt.Errorf("putting %s on the loopback interface: %w", h.ip, err)
	}
	if err := h.ensureNoTrack(); err != nil {
		return fmt.Errorf("rules letting DNS to %s skip connection tracking: %w", h.ip, err)
	}
	return nil
}

func (h hostNetwork) remove() error {
	var errs []error
	if lo, err := netlink.LinkByName("lo"); err == nil {
		if err := netlink.AddrDel(lo, h.address()); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			errs = append(errs, err)
		}
	}
	if h.nft {
		if out, err := exec.Command("nft", "delete", "table", h.nftFamily(), nftTable).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
			errs = append(errs, fmt.Errorf("nft delete table: %v: %s", err, out))
		}
	} else if ipt, err := h.iptables(); err == nil {
		for _, hook := range []string{"PREROUTING", "OUTPUT"} {
			errs = append(errs, ipt.DeleteIfExists("raw", hook, "-j", chain))
		}
		if ok, _ := ipt.ChainExists("raw", chain); ok {
			errs = append(errs, ipt.ClearAndDeleteChain("raw", chain))
		}
	}
	return errors.Join(errs...)
}

func (h hostNetwork) prefixLen() int {
	if h.ip.To4() != nil {
		return 32
	}
	return 128
}

func (h hostNetwork) address() *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: h.ip, Mask: net.CIDRMask(h.prefixLen(), h.prefixLen())}}
	if h.ip.To4() != nil {
		a.Label = AddressLabel // the kernel labels IPv4 addresses only
	}
	return a
}

func (h hostNetwork) ensureAddress() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.AddrReplace(lo, h.address())
}

// rules are the NOTRACK matches, as iptables arguments.
func (h hostNetwork) rules() [][]string {
	ip := fmt.Sprintf("%s/%d", h.ip, h.prefixLen())
	var rules [][]string
	for _, proto := range []string{"udp", "tcp"} {
		rules = append(rules,
			[]string{"-d", ip, "-p", proto, "--dport", "53", "-j", "NOTRACK"},
			[]string{"-s", ip, "-p", proto, "--sport", "53", "-j", "NOTRACK"})
	}
	return rules
}

func (h hostNetwork) iptables() (*iptables.IPTables, error) {
	proto := iptables.ProtocolIPv4
	if h.ip.To4() == nil {
		proto = iptables.ProtocolIPv6
	}
	return iptables.NewWithProtocol(proto)
}

func (h hostNetwork) nftFamily() string {
	if h.ip.To4() == nil {
		return "ip6"
	}
	return "ip"
}

func (h hostNetwork) ensureNoTrack() error {
	if h.nft {
		return h.ensureNFT()
	}
	ipt, err := h.iptables()
	if err != nil {
		return err
	}
	if ok, err := ipt.ChainExists("raw", chain); err != nil {
		return err
	} else if !ok {
		if err := ipt.NewChain("raw", chain); err != nil {
			return err
		}
	}
	for _, r := range h.rules() {
		if err := ipt.AppendUnique("raw", chain, r...); err != nil {
			return err
		}
	}
	for _, hook := range []string{"PREROUTING", "OUTPUT"} {
		if err := ipt.InsertUnique("raw", hook, 1, "-j", chain); err != nil {
			return err
		}
	}
	return nil
}

// ensureNFT replaces hw's table in one transaction.
func (h hostNetwork) ensureNFT() error {
	fam, addr := h.nftFamily(), h.nftFamily()
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {}\ndelete table %s %s\ntable %s %s {\n", fam, nftTable, fam, nftTable, fam, nftTable)
	for _, hook := range []string{"prerouting", "output"} {
		fmt.Fprintf(&b, "  chain %s {\n    type filter hook %s priority raw;\n", hook, hook)
		for _, proto := range []string{"udp", "tcp"} {
			fmt.Fprintf(&b, "    %s daddr %s %s dport 53 notrack\n", addr, h.ip, proto)
			fmt.Fprintf(&b, "    %s saddr %s %s sport 53 notrack\n", addr, h.ip, proto)
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	return nil
}
