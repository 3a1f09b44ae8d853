package boot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/atomicfile"
	"github.com/hw-k8s/hw/pkg/component/etcd"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/etcdcluster"
	"github.com/hw-k8s/hw/pkg/join"
	"github.com/hw-k8s/hw/pkg/pki"
	"github.com/hw-k8s/hw/pkg/snapshot"
	"github.com/hw-k8s/hw/pkg/token"
)

// sharedFiles are the files every server of a cluster holds alike: the CAs
// with their keys, the service-account key pair, the Secrets encryption
// configuration and the server token. Each server issues its own leaves.
func sharedFiles(paths config.Paths, layout *pki.ServerPKI, encryptionConfig string) []string {
	var out []string
	for _, ca := range []*pki.Authority{layout.ServerCA, layout.ClientCA, layout.RequestHeaderCA, layout.EtcdServerCA, layout.EtcdPeerCA} {
		out = append(out, ca.CertFile, ca.KeyFile)
	}
	return append(out, layout.ServiceAccountKey, layout.ServiceAccountPub, encryptionConfig, paths.Token)
}

// joinCluster makes this server one of an existing cluster's (--server): on
// first start it fetches the files all servers share and the cluster's
// settings, and saves the settings; on later starts it reads them back. The
// cluster-wide settings the user did not give are taken from the cluster; one
// given with another value is refused before anything is written.
func joinCluster(ctx context.Context, cfg *config.Server) error {
	paths := cfg.Paths()
	log := klog.FromContext(ctx)
	var settings join.Settings
	if data, err := os.ReadFile(paths.ServerJoinState); err == nil {
		if err := json.Unmarshal(data, &settings); err != nil {
			return fmt.Errorf("%s is unreadable (%v): delete it and start again with --server to fetch the cluster's settings", paths.ServerJoinState, err)
		}
		log.Info("This server joined its cluster before; using its saved settings", "file", paths.ServerJoinState)
		return adoptClusterSettings(cfg, settings)
	}
	tok, err := token.Parse(cfg.Token)
	if err != nil {
		return fmt.Errorf("--token: %v", err)
	}
	log.Info("Joining the cluster as a server", "server", cfg.Server, "node", cfg.NodeName)
	res, err := join.FetchServerFiles(ctx, cfg.Server, tok)
	if err != nil {
		return err
	}
	if err := adoptClusterSettings(cfg, res.Settings); err != nil {
		return err
	}
	layout := pki.ServerLayout(paths.TLS)
	caName, err := join.SharedName(cfg.DataDir, layout.ServerCA.CertFile)
	if err != nil {
		return err
	}
	if have, err := os.ReadFile(layout.ServerCA.CertFile); err == nil && !bytes.Equal(have, res.Files[caName]) {
		return fmt.Errorf("--data-dir %s holds another cluster's CA (%s): use an empty --data-dir to join %s", cfg.DataDir, layout.ServerCA.CertFile, cfg.Server)
	}
	if err := res.Files.Write(cfg.DataDir); err != nil {
		return err
	}
	state, err := json.Marshal(res.Settings)
	if err != nil {
		return err
	}
	log.Info("Fetched the files all servers share", "files", len(res.Files))
	return atomicfile.Write(paths.ServerJoinState, state, 0o600)
}

// adoptClusterSettings sets cfg's cluster-wide settings to the cluster's,
// refusing those the user gave with other values, all named at once.
func adoptClusterSettings(cfg *config.Server, st join.Settings) error {
	var conflicts []string
	adopt := func(flag, ours, theirs string, set func(string) error) error {
		if theirs == "" || ours == theirs {
			return nil
		}
		for _, given := range cfg.Given {
			if given == flag {
				conflicts = append(conflicts, fmt.Sprintf("--%s %s (the cluster's is %s)", flag, ours, theirs))
				return nil
			}
		}
		return set(theirs)
	}
	cidr := func(dst **net.IPNet) func(string) error {
		return func(v string) error {
			_, n, err := net.ParseCIDR(v)
			*dst = n
			return err
		}
	}
	for _, err := range []error{
		adopt("cluster-cidr", cfg.ClusterCIDR.String(), st.ClusterCIDR, cidr(&cfg.ClusterCIDR)),
		adopt("service-cidr", cfg.ServiceCIDR.String(), st.ServiceCIDR, cidr(&cfg.ServiceCIDR)),
		adopt("cluster-dns", cfg.ClusterDNS.String(), st.ClusterDNS, func(v string) error {
			if cfg.ClusterDNS = net.ParseIP(v).To4(); cfg.ClusterDNS == nil {
				return fmt.Errorf("the cluster's DNS address %q is not IPv4", v)
			}
			return nil
		}),
		adopt("cluster-domain", cfg.ClusterDomain, st.ClusterDomain, func(v string) error { cfg.ClusterDomain = v; return nil }),
		adopt("flannel-backend", cfg.FlannelBackend, st.FlannelBackend, func(v string) error { cfg.FlannelBackend = v; return nil }),
		adopt("disable-network-policy", strconv.FormatBool(cfg.DisableNetworkPolicy), strconv.FormatBool(st.DisableNetworkPolicy), func(v string) error {
			cfg.DisableNetworkPolicy = v == "true"
			return nil
		}),
	} {
		if err != nil {
			return err
		}
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("this server's settings differ from its cluster's: %s; drop them (servers take the cluster's) or give the cluster's values", strings.Join(conflicts, ", "))
	}
	return nil
}

// etcdOfJoined is a client of the etcd of the server this one joins.
func (s *server) etcdOfJoined() (*clientv3.Client, string, error) {
	u, err := url.Parse(s.cfg.Server)
	if err != nil {
		return nil, "", err
	}
	endpoint := fmt.Sprintf("https://%s", net.JoinHostPort(u.Hostname(), fmt.Sprint(config.EtcdClientPort)))
	tlsConfig, err := s.etcdClientTLS()
	if err != nil {
		return nil, "", err
	}
	c, err := etcdcluster.Client([]string{endpoint}, tlsConfig)
	return c, endpoint, err
}

// leaveStaleEtcd moves this server's etcd data aside when the cluster it
// joined no longer has it as a member: its Node was deleted, or the cluster
// was restored from a snapshot on another server. The data is kept, and the
// server then joins afresh. A cluster that does not answer says nothing:
// the data stays.
func (s *server) leaveStaleEtcd(ctx context.Context) error {
	log := klog.FromContext(ctx)
	c, endpoint, err := s.etcdOfJoined()
	if err != nil {
		return err
	}
	defer c.Close()
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := c.MemberList(callCtx)
	if err != nil {
		log.Info("Cannot check this server's etcd membership; starting with its data as it is", "via", endpoint, "err", err.Error())
		return nil
	}
	for _, m := range list.Members {
		if slices.Contains(m.PeerURLs, s.etcdPeerURL()) {
			return nil
		}
	}
	moved, err := snapshot.MoveAside(s.paths.Etcd, time.Now())
	if err != nil {
		return err
	}
	log.Info("This server is no longer a member of its cluster's etcd (its Node was deleted, or the cluster was restored from a snapshot): its old etcd data is kept aside; joining again", "via", endpoint, "kept", moved)
	return nil
}

// joinEtcd adds this server's etcd member to the cluster of the server it
// joins, reached at that server's etcd client port.
func (s *server) joinEtcd(ctx context.Context) (string, error) {
	c, endpoint, err := s.etcdOfJoined()
	if err != nil {
		return "", err
	}
	defer c.Close()
	klog.FromContext(ctx).Info("Adding this server to etcd", "via", endpoint, "member", s.cfg.NodeName, "peer", s.etcdPeerURL())
	return etcdcluster.Join(ctx, c, s.cfg.NodeName, s.etcdPeerURL())
}

// promoteEtcd makes this server's member a voter if it is still a learner
// (it just joined, or stopped before it was promoted), asking the others.
func (s *server) promoteEtcd(ctx context.Context, m etcd.Membership) error {
	if !m.Learner {
		return nil
	}
	if len(m.OtherClientURLs) == 0 {
		return fmt.Errorf("this server is an etcd learner with no other member to promote it")
	}
	tlsConfig, err := s.etcdClientTLS()
	if err != nil {
		return err
	}
	c, err := etcdcluster.Client(m.OtherClientURLs, tlsConfig)
	if err != nil {
		return err
	}
	defer c.Close()
	klog.FromContext(ctx).Info("Waiting for this server's etcd member to catch up, to promote it")
	return etcdcluster.Promote(ctx, c, s.cfg.NodeName)
}
