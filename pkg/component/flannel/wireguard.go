package flannel

import (
	"github.com/vishvananda/netlink"
)

// probeWireGuard creates and removes a WireGuard link: the only sure test
// that the kernel supports it, built in or as a module.
func probeWireGuard() error {
	link := &netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: "hw-wg-probe"}}
	if err := netlink.LinkAdd(link); err != nil {
		return err
	}
	return netlink.LinkDel(link)
}
