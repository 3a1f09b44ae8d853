// Package etcd runs etcd inside the hw process through etcd's embed package,
// configured from a typed struct (no YAML round trip).
package etcd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/logging"
)

// Config is what the etcd component needs to know.
type Config struct {
	Name    string
	DataDir string
	// ClientURL is where the apiserver connects, on loopback; PeerURL where
	// other members do. NodeClientURL, when set, also serves clients, on the
	// node's address, for other servers (joins, promotions) and is the one
	// the member advertises.
	ClientURL, PeerURL, NodeClientURL string
	// Client-facing TLS: server certificate and the CA its clients must present.
	ServerCA, ServerCert, ServerKey string
	// Peer TLS.
	PeerCA, PeerCert, PeerKey string
	// ExtraArgs are the user's --etcd-arg KEY=VALUE settings.
	ExtraArgs []string
	// ForceNewCluster makes the existing data a single-member cluster of
	// this member (--cluster-reset without a snapshot).
	ForceNewCluster bool
	// Join, when set, is called by Start when the data dir holds no member
	// yet: it adds this member to an existing cluster and returns the
	// initial-cluster setting to start with.
	Join func(ctx context.Context) (initialCluster string, err error)
	// Rejoin, when set, is called by Start when the data dir holds a
	// member, before Join: it may move data that no longer belongs to the
	// cluster aside, and Join then adds the member afresh.
	Rejoin func(ctx context.Context) error
	// AfterReady, when set, runs once etcd serves, before Ready returns,
	// with the member's own view of its cluster: a learner is promoted there.
	AfterReady func(ctx context.Context, m Membership) error
	Debug      bool
}

// managedFlags are set by hw from its own flags; overriding them through
// --etcd-arg would break the cluster, so it is refused.
var managedFlags = map[string]string{
	"data-dir": "--data-dir", "name": "--node-name",
	"listen-client-urls": "", "listen-peer-urls": "", "advertise-client-urls": "",
	"initial-advertise-peer-urls": "", "initial-cluster": "", "initial-cluster-state": "",
	"cert-file": "", "key-file": "", "trusted-ca-file": "", "client-cert-auth": "",
	"peer-cert-file": "", "peer-key-file": "", "peer-trusted-ca-file": "", "peer-client-cert-auth": "",
}

// Etcd is the embedded etcd server.
type Etcd struct {
	cfg Config

	// embedCfg is etcd's own configuration, built by Init.
	embedCfg *embed.Config

	mu     sync.Mutex
	server *embed.Etcd
	done   chan struct{}
	err    error
	once   sync.Once
}

var _ lifecycle.Component = (*Etcd)(nil)

// New returns an etcd component; nothing runs until Start.
func New(cfg Config) *Etcd { return &Etcd{cfg: cfg, done: make(chan struct{})} }

func (e *Etcd) Name() string { return "etcd" }

// Init builds and checks etcd's configuration, --etcd-arg included.
func (e *Etcd) Init(ctx context.Context) error {
	ec, err := e.EmbedConfig()
	if err != nil {
		return err
	}
	e.embedCfg = ec
	return nil
}

// EmbedConfig builds etcd's own configuration, applying --etcd-arg on top.
func (e *Etcd) EmbedConfig() (*embed.Config, error) {
	c := e.cfg
	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = c.DataDir
	client, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, err
	}
	peer, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, err
	}
	ec.ListenClientUrls = []url.URL{*client}
	ec.AdvertiseClientUrls = []url.URL{*client}
	if c.NodeClientURL != "" {
		node, err := url.Parse(c.NodeClientURL)
		if err != nil {
			return nil, err
		}
		ec.ListenClientUrls = append(ec.ListenClientUrls, *node)
		ec.AdvertiseClientUrls = []url.URL{*node}
	}
	ec.ListenPeerUrls = []url.URL{*peer}
	ec.AdvertisePeerUrls = []url.URL{*peer}
	ec.InitialCluster = fmt.Sprintf("%s=%s", c.Name, peer)
	ec.ClusterState = embed.ClusterStateFlagNew
	ec.ForceNewCluster = c.ForceNewCluster
	ec.ClientTLSInfo.CertFile = c.ServerCert
	ec.ClientTLSInfo.KeyFile = c.ServerKey
	ec.ClientTLSInfo.TrustedCAFile = c.ServerCA
	ec.ClientTLSInfo.ClientCertAuth = true
	ec.PeerTLSInfo.CertFile = c.PeerCert
	ec.PeerTLSInfo.KeyFile = c.PeerKey
	ec.PeerTLSInfo.TrustedCAFile = c.PeerCA
	ec.PeerTLSInfo.ClientCertAuth = true
	// The apiserver compacts every 5 minutes; etcd also keeps a day of history.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "24h"
	ec.SnapshotCount = 10000

	level := zapcore.WarnLevel
	if c.Debug {
		level = zapcore.InfoLevel
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	logger := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(logging.Writer("etcd")), level))
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)

	if len(c.ExtraArgs) > 0 {
		fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		ec.AddFlags(fs)
		for _, a := range c.ExtraArgs {
			key, value, err := config.SplitArg(a)
			if err != nil {
				return nil, fmt.Errorf("--etcd-arg %q: %v", a, err)
			}
			if hwFlag, managed := managedFlags[key]; managed {
				if hwFlag != "" {
					return nil, fmt.Errorf("--etcd-arg %s: hw sets this itself; use %s instead", key, hwFlag)
				}
				return nil, fmt.Errorf("--etcd-arg %s: hw sets this itself and it cannot be overridden", key)
			}
			if err := fs.Parse([]string{"--" + key + "=" + value}); err != nil {
				return nil, fmt.Errorf("--etcd-arg %s: etcd refuses it: %v", a, strings.TrimSpace(err.Error()))
			}
		}
	}
	if err := ec.Validate(); err != nil {
		return nil, fmt.Errorf("invalid etcd configuration: %w", err)
	}
	return ec, nil
}

// Start launches etcd; it is ready when Ready returns.
func (e *Etcd) Start(ctx context.Context) error {
	if e.embedCfg == nil {
		return errors.New("started before Init")
	}
	if e.cfg.Rejoin != nil && HasData(e.cfg.DataDir) {
		if err := e.cfg.Rejoin(ctx); err != nil {
			return err
		}
	}
	if e.cfg.Join != nil && !HasData(e.cfg.DataDir) {
		initial, err := e.cfg.Join(ctx)
		if err != nil {
			return err
		}
		e.embedCfg.InitialCluster = initial
		e.embedCfg.ClusterState = embed.ClusterStateFlagExisting
	}
	server, err := embed.StartEtcd(e.embedCfg)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.server = server
	e.mu.Unlock()
	go func() {
		select {
		case err := <-server.Err():
			e.finish(err)
		case <-server.Server.StopNotify():
			e.finish(nil)
		}
	}()
	return nil
}

func (e *Etcd) finish(err error) {
	e.once.Do(func() {
		e.err = err
		close(e.done)
	})
}

// Ready waits until etcd has joined its cluster and serves clients.
func (e *Etcd) Ready(ctx context.Context) error {
	e.mu.Lock()
	server := e.server
	e.mu.Unlock()
	if server == nil {
		return errors.New("not started")
	}
	select {
	case <-server.Server.ReadyNotify():
	case <-ctx.Done():
		return ctx.Err()
	}
	if e.cfg.AfterReady != nil {
		return e.cfg.AfterReady(ctx, membershipOf(server))
	}
	return nil
}

// Membership is a member's view of its cluster, read locally: a learner
// answers no membership request.
type Membership struct {
	Learner bool
	// OtherClientURLs are where the other members serve clients.
	OtherClientURLs []string
}

func membershipOf(server *embed.Etcd) Membership {
	var m Membership
	self := server.Server.MemberID()
	for _, member := range server.Server.Cluster().Members() {
		if member.ID == self {
			m.Learner = member.IsLearner
			continue
		}
		m.OtherClientURLs = append(m.OtherClientURLs, member.ClientURLs...)
	}
	return m
}

// HasData reports whether dir holds an etcd member's data.
func HasData(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "member", "wal"))
	return err == nil
}

func (e *Etcd) Done() <-chan struct{} { return e.done }

func (e *Etcd) Err() error {
	select {
	case <-e.done:
		return e.err
	default:
		return nil
	}
}

// Stop closes etcd: it stops serving, then syncs and closes its data files.
// It always waits for the close to finish, whatever ctx says: this is the
// one component whose stop protects data.
func (e *Etcd) Stop(ctx context.Context) error {
	e.mu.Lock()
	server := e.server
	e.mu.Unlock()
	if server == nil {
		return nil
	}
	server.Close()
	e.finish(nil)
	return nil
}
