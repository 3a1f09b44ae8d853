package boot

import (
	"net"
	"os"
	"time"

	"github.com/hw-k8s/hw/pkg/assets"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/hostinfo"
	"github.com/hw-k8s/hw/pkg/preflight"
)

// hostFindings are the checks of the machine itself: kernel, cgroups, swap,
// capabilities.
func hostFindings() []preflight.Finding {
	h := preflight.Host{Root: os.DirFS("/")}
	out := append(preflight.Kernel(h), preflight.Cgroups(h)...)
	return append(out, preflight.Swap(h), preflight.Capabilities(h))
}

// CheckConfig is `hw check-config`: the host checks, and the ones a server
// with the default settings makes when it starts (its tools, its ports, the
// data dir), through the same functions.
func CheckConfig(dataDir string) []preflight.Finding {
	out := hostFindings()
	cfg := config.NewServer()
	cfg.DataDir, cfg.NodeName = dataDir, "check-config"
	ip, err := hostinfo.NodeIP()
	if err != nil {
		out = append(out, preflight.Finding{Check: "node IP", Status: preflight.Fail, Detail: err.Error()})
		ip = net.IPv4(127, 0, 0, 1)
	} else {
		out = append(out, preflight.Finding{Check: "node IP", Status: preflight.OK, Detail: ip.String() + " (--node-ip to choose another)"})
	}
	cfg.NodeIP = ip
	set, err := assets.Embedded()
	if err != nil {
		return append(out, preflight.Finding{Check: "hw's embedded programs", Status: preflight.Fail, Detail: err.Error()})
	}
	s := newServer(cfg, set, time.Now())
	tools, user := s.node.tools()
	out = append(out, preflight.Tools(user, tools, nil)...)
	out = append(out, preflight.Ports(s.ports())...)
	return append(out, preflight.DataDir(dataDir, "--data-dir"))
}
