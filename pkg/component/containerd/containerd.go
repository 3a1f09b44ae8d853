// Package containerd runs containerd, with its CRI plugin, inside the hw
// process. Shims and runc are separate processes, so containers outlive hw.
package containerd

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins" // containerd's plugins, CRI included
	"github.com/containerd/containerd/v2/cmd/containerd/server"
	srvconfig "github.com/containerd/containerd/v2/cmd/containerd/server/config"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/sirupsen/logrus"

	"github.com/hw-k8s/hw/pkg/atomicfile"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/logging"
)

// Containerd is the embedded containerd.
type Containerd struct {
	lifecycle.Goroutine
	cfg Config
	// configText is config.toml as Init rendered it.
	configText []byte

	mu       sync.Mutex
	server   *server.Server
	ready    chan struct{}
	stopping atomic.Bool
}

var _ lifecycle.Component = (*Containerd)(nil)

// New returns the component; nothing runs until Start.
func New(cfg Config) *Containerd { return &Containerd{cfg: cfg, ready: make(chan struct{})} }

func (c *Containerd) Name() string { return "containerd" }

// Init renders containerd's config.toml.
func (c *Containerd) Init(ctx context.Context) error {
	text, err := c.cfg.Render()
	if err != nil {
		return fmt.Errorf("containerd configuration: %w", err)
	}
	c.configText = text
	return nil
}

// Start writes the config, loads containerd's plugins and starts serving.
func (c *Containerd) Start(ctx context.Context) error {
	text := c.configText
	if text == nil {
		return errors.New("started before Init")
	}
	if err := atomicfile.Write(c.cfg.ConfigFile, text, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", c.cfg.ConfigFile, err)
	}
	configureLogging(c.cfg.Debug)
	ctx = log.WithLogger(ctx, c.logger())

	cfg := &srvconfig.Config{}
	all := registry.Graph(func(*plugin.Registration) bool { return false })
	plugins := func() iter.Seq[plugin.Registration] { return slices.Values(all) }
	if err := srvconfig.LoadConfigWithPlugins(ctx, c.cfg.ConfigFile, plugins, cfg); err != nil {
		return fmt.Errorf("loading %s: %w", c.cfg.ConfigFile, err)
	}
	if err := server.CreateTopLevelDirectories(cfg); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.cfg.Address), 0o711); err != nil {
		return err
	}
	if err := mount.SetTempMountLocation(filepath.Join(cfg.Root, "tmpmounts")); err != nil {
		return fmt.Errorf("creating temp mount location: %w", err)
	}
	if _, err := mount.CleanupTempMounts(0); err != nil {
		log.G(ctx).WithError(err).Warn("unmounting temp mounts")
	}

	c.Go(ctx, func(ctx context.Context) error {
		srv, err := server.New(ctx, cfg)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.server = srv
		c.mu.Unlock()
		if err := srv.Start(ctx); err != nil {
			srv.Stop()
			return err
		}
		go func() {
			srv.Wait()
			close(c.ready)
		}()
		<-ctx.Done()
		c.stopping.Store(true)
		srv.Stop()
		return nil
	})
	return nil
}

// Ready waits until every plugin that registered readiness (CRI among them) is up.
func (c *Containerd) Ready(ctx context.Context) error { return c.WaitReady(ctx, c.ready) }

// logger is containerd's logger for this instance. containerd ends the
// process on a fatal log line; one it writes because hw is stopping it (a
// listener closed before it served, when a stop comes during start-up) must
// not turn a clean shutdown into exit status 1.
func (c *Containerd) logger() *log.Entry {
	std := logrus.StandardLogger()
	l := &logrus.Logger{Out: std.Out, Formatter: std.Formatter, Hooks: std.Hooks, Level: std.GetLevel(), ExitFunc: func(code int) {
		if !c.stopping.Load() {
			os.Exit(code)
		}
	}}
	return logrus.NewEntry(l)
}

var logOnce sync.Once

// configureLogging sends containerd's logrus output to hw's log. logrus is
// process-wide, and only containerd uses it.
func configureLogging(debug bool) {
	logOnce.Do(func() {
		logrus.SetOutput(logging.Writer("containerd"))
		logrus.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
		level := logrus.WarnLevel
		if debug {
			level = logrus.InfoLevel
		}
		logrus.SetLevel(level)
	})
}
