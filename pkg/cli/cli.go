package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/hostinfo"
	"github.com/hw-k8s/hw/pkg/version"
)

// Actions are what the commands do once their input is parsed; cmd/hw
// injects them, so this package can be tested without starting anything.
type Actions struct {
	Server  func(ctx context.Context, cfg *config.Server) error
	Agent   func(ctx context.Context, cfg *config.Agent) error
	Kubectl func(args []string) error
	Ctr     func(args []string) error
	Crictl  func(args []string) error
	Token   func(ctx context.Context, req TokenRequest) error
	// EtcdSnapshot is `hw etcd-snapshot save|ls|delete|prune`.
	EtcdSnapshot func(ctx context.Context, req SnapshotRequest) error
	// CheckConfig is `hw check-config`: it prints the host checks and
	// fails if one would stop hw.
	CheckConfig func(ctx context.Context, dataDir string) error
}

// SnapshotRequest is one `hw etcd-snapshot` command.
type SnapshotRequest struct {
	Op      string // save, ls, delete or prune
	DataDir string
	// Dir is --etcd-snapshot-dir; empty: the data dir's.
	Dir       string
	Name      string
	Names     []string
	Retention int
	// S3 is --etcd-s3's store; nil: local snapshots only.
	S3 *config.EtcdS3
	// Compress is save's --etcd-snapshot-compress.
	Compress bool
}

// TokenRequest is one `hw token` command.
type TokenRequest struct {
	Op          string // create, list or delete
	Kubeconfig  string
	TTL         time.Duration
	Description string
	IDs         []string
}

// NewApp builds the `hw` command.
func NewApp(a Actions) *cli.App {
	app := &cli.App{
		Name:                 "hw",
		Usage:                "Kubernetes in one binary",
		Version:              version.Version,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		OnUsageError:         usageError,
		Commands: []*cli.Command{
			{
				Name:         "server",
				Usage:        "run a control plane and a node",
				Flags:        serverFlags(),
				OnUsageError: usageError,
				Before:       loadConfigFile,
				Action: func(c *cli.Context) error {
					cfg, err := ServerConfig(c)
					if err != nil {
						return err
					}
					return a.Server(c.Context, cfg)
				},
			},
			{
				Name:         "agent",
				Usage:        "run a node that joins a server",
				Flags:        agentFlags(),
				OnUsageError: usageError,
				Before:       loadConfigFile,
				Action: func(c *cli.Context) error {
					cfg, err := AgentConfig(c)
					if err != nil {
						return err
					}
					return a.Agent(c.Context, cfg)
				},
			},
			{
				Name:            "kubectl",
				Usage:           "run kubectl against this cluster (default kubeconfig: " + config.DefaultKubeconfigPath + ")",
				SkipFlagParsing: true,
				Action:          func(c *cli.Context) error { return a.Kubectl(append([]string{"kubectl"}, c.Args().Slice()...)) },
			},
			{
				Name:            "ctr",
				Usage:           "run containerd's ctr against hw's containerd",
				SkipFlagParsing: true,
				Action:          func(c *cli.Context) error { return a.Ctr(append([]string{"ctr"}, c.Args().Slice()...)) },
			},
			tokenCommand(a),
			snapshotCommand(a),
			{
				Name:         "check-config",
				Usage:        "check this host for what hw needs: kernel, cgroups, tools, ports, data dir (exit 1 if something would stop hw)",
				OnUsageError: usageError,
				Flags: []cli.Flag{&cli.StringFlag{Name: flagDataDir, Aliases: []string{"d"}, EnvVars: []string{"HW_DATA_DIR"},
					Value: config.NewServer().DataDir, Usage: "the data dir to check"}},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return fmt.Errorf("hw check-config takes no arguments (got %q)", c.Args().First())
					}
					return a.CheckConfig(c.Context, c.String(flagDataDir))
				},
			},
			{
				Name:            "crictl",
				Usage:           "run the installed crictl against hw's containerd",
				SkipFlagParsing: true,
				Action:          func(c *cli.Context) error { return a.Crictl(append([]string{"crictl"}, c.Args().Slice()...)) },
			},
		},
	}
	return app
}

// usageError turns urfave's "flag provided but not defined: -x" into one
// line that names the flag and where to look.
func usageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		msg = "unknown flag --" + strings.TrimLeft(name, "-")
	}
	cmd := "hw"
	if c.Command != nil && c.Command.Name != "" {
		cmd += " " + c.Command.Name
	}
	return fmt.Errorf("%s; run '%s --help' for the list of flags", msg, cmd)
}

func loadConfigFile(c *cli.Context) error {
	return applyConfigFile(c, c.String(flagConfig), c.IsSet(flagConfig))
}

// AgentConfig turns `hw agent`'s flags into a validated config.Agent.
func AgentConfig(c *cli.Context) (*config.Agent, error) {
	a := &config.Agent{
		DataDir:      c.String(flagDataDir),
		Server:       strings.TrimRight(c.String(flagServer), "/"),
		NodeName:     c.String(flagNodeName),
		FlannelIface: c.String(flagFlannelIface),
		Snapshotter:  c.String(flagSnapshotter),
		Debug:        c.Bool(flagDebug),
		EnablePprof:  c.Bool(flagEnablePprof),
		NodeLabels:   c.StringSlice(flagNodeLabel),
		NodeTaints:   c.StringSlice(flagNodeTaint),
		ExtraArgs: config.ExtraArgs{
			Kubelet:   c.StringSlice(flagKubeletArg),
			KubeProxy: c.StringSlice(flagKubeProxyArg),
		},
	}
	var err error
	if a.Token, err = tokenFlag(c); err != nil {
		return nil, err
	}
	if a.NodeIP, err = parseIP(c, flagNodeIP); err != nil {
		return nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if a.NodeName == "" {
		if a.NodeName, err = hostinfo.NodeName(); err != nil {
			return nil, err
		}
	}
	if a.NodeIP == nil {
		if a.NodeIP, err = hostinfo.NodeIP(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// ServerConfig turns the parsed flags into a validated config.Server,
// detecting the node name and IP where they were not given.
func ServerConfig(c *cli.Context) (*config.Server, error) {
	s := &config.Server{
		DataDir:              c.String(flagDataDir),
		Server:               strings.TrimRight(c.String(flagServer), "/"),
		NodeName:             c.String(flagNodeName),
		HTTPSPort:            c.Int(flagHTTPSPort),
		TLSSANs:              c.StringSlice(flagTLSSAN),
		ClusterDomain:        c.String(flagClusterDomain),
		FlannelBackend:       c.String(flagFlannelBackend),
		FlannelIface:         c.String(flagFlannelIface),
		Snapshotter:          c.String(flagSnapshotter),
		WriteKubeconfig:      c.String(flagWriteKubeconfig),
		Disable:              c.StringSlice(flagDisable),
		DisableNetworkPolicy: c.Bool(flagDisableNetworkPolicy),
		Debug:                c.Bool(flagDebug),
		EnablePprof:          c.Bool(flagEnablePprof),
		NodeLabels:           c.StringSlice(flagNodeLabel),
		NodeTaints:           c.StringSlice(flagNodeTaint),
		ExtraArgs: config.ExtraArgs{
			APIServer:         c.StringSlice(flagAPIServerArg),
			ControllerManager: c.StringSlice(flagControllerArg),
			Scheduler:         c.StringSlice(flagSchedulerArg),
			Etcd:              c.StringSlice(flagEtcdArg),
			Kubelet:           c.StringSlice(flagKubeletArg),
			KubeProxy:         c.StringSlice(flagKubeProxyArg),
		},
	}
	var err error
	if s.Token, err = tokenFlag(c); err != nil {
		return nil, err
	}
	if s.BindAddress, err = parseIP(c, flagBindAddress); err != nil {
		return nil, err
	}
	if s.AdvertiseAddress, err = parseIP(c, flagAdvertiseAddress); err != nil {
		return nil, err
	}
	if s.NodeIP, err = parseIP(c, flagNodeIP); err != nil {
		return nil, err
	}
	if s.ClusterDNS, err = parseIP(c, flagClusterDNS); err != nil {
		return nil, err
	}
	if s.ClusterCIDR, err = parseCIDR(c, flagClusterCIDR); err != nil {
		return nil, err
	}
	if s.ServiceCIDR, err = parseCIDR(c, flagServiceCIDR); err != nil {
		return nil, err
	}
	s.EtcdSnapshots = config.EtcdSnapshots{
		Disable:   c.Bool(flagSnapshotDisable),
		Cron:      c.String(flagSnapshotCron),
		Retention: c.Int(flagSnapshotRetention),
		Name:      c.String(flagSnapshotName),
		Dir:       c.String(flagSnapshotDir),
		Compress:  c.Bool(flagSnapshotCompress),
	}
	if s.EtcdSnapshots.S3, err = s3Config(c); err != nil {
		return nil, err
	}
	s.ClusterReset, s.ClusterResetRestorePath = c.Bool(flagClusterReset), c.String(flagClusterResetRestore)
	s.Datastore = config.Datastore{
		CAFile: c.String(flagDatastoreCAFile), CertFile: c.String(flagDatastoreCertFile), KeyFile: c.String(flagDatastoreKeyFile),
	}
	for _, e := range strings.Split(c.String(flagDatastoreEndpoint), ",") {
		if e = strings.TrimSpace(e); e != "" {
			s.Datastore.Endpoints = append(s.Datastore.Endpoints, e)
		}
	}
	for _, name := range config.ClusterSettings {
		if c.IsSet(name) {
			s.Given = append(s.Given, name)
		}
	}
	mode, err := strconv.ParseUint(c.String(flagWriteKubeconfigMode), 8, 32)
	if err != nil || mode > 0o777 {
		return nil, fmt.Errorf("--%s %q is not an octal file mode (example: 0644)", flagWriteKubeconfigMode, c.String(flagWriteKubeconfigMode))
	}
	s.WriteKubeconfigMode = os.FileMode(mode)
	if s.NodeName == "" {
		if s.NodeName, err = hostinfo.NodeName(); err != nil {
			return nil, err
		}
	}
	if s.NodeIP == nil {
		if s.NodeIP, err = hostinfo.NodeIP(); err != nil {
			return nil, err
		}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// tokenFlag is --token, or the contents of --token-file (as install.sh's
// HW_TOKEN_FILE keeps the secret out of the service's environment).
func tokenFlag(c *cli.Context) (string, error) {
	file := c.String(flagTokenFile)
	if file == "" {
		return c.String(flagToken), nil
	}
	if c.String(flagToken) != "" {
		return "", fmt.Errorf("both --token and --token-file are set (or HW_TOKEN and HW_TOKEN_FILE): keep one")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	return token, nil
}

func parseIP(c *cli.Context, name string) (net.IP, error) {
	v := c.String(name)
	if v == "" {
		return nil, nil
	}
	ip := net.ParseIP(v)
	if ip == nil {
		return nil, fmt.Errorf("--%s %q is not an IP address", name, v)
	}
	if v4 := ip.To4(); v4 != nil {
		return v4, nil
	}
	return ip, nil
}

func parseCIDR(c *cli.Context, name string) (*net.IPNet, error) {
	v := c.String(name)
	ip, n, err := net.ParseCIDR(v)
	if err != nil {
		return nil, fmt.Errorf("--%s %q is not a CIDR (example: 10.42.0.0/16)", name, v)
	}
	if !ip.Equal(n.IP) {
		return nil, fmt.Errorf("--%s %q has host bits set; did you mean %s?", name, v, n)
	}
	return n, nil
}

// tokenCommand is `hw token create|list|delete`: join tokens for agents,
// kept in the cluster as bootstrap tokens.
func tokenCommand(a Actions) *cli.Command {
	kubeconfig := &cli.StringFlag{Name: "kubeconfig", EnvVars: []string{"KUBECONFIG"}, Value: config.DefaultKubeconfigPath,
		Usage: "admin kubeconfig of the cluster"}
	run := func(op string) cli.ActionFunc {
		return func(c *cli.Context) error {
			req := TokenRequest{Op: op, Kubeconfig: c.String("kubeconfig"), IDs: c.Args().Slice()}
			switch op {
			case "create":
				req.TTL, req.Description = c.Duration("ttl"), c.String("description")
				if req.TTL < 0 {
					return fmt.Errorf("--ttl %s is negative; use 0 for a token that never expires", req.TTL)
				}
				if c.NArg() > 0 {
					return fmt.Errorf("hw token create takes no arguments (got %q); see 'hw token create --help'", c.Args().First())
				}
			case "delete":
				if c.NArg() == 0 {
					return fmt.Errorf("hw token delete needs the ID of a token (see 'hw token list')")
				}
			}
			return a.Token(c.Context, req)
		}
	}
	return &cli.Command{
		Name:  "token",
		Usage: "manage join tokens for agents",
		Subcommands: []*cli.Command{
			{
				Name:         "create",
				Usage:        "make a join token and print it",
				OnUsageError: usageError,
				Flags: []cli.Flag{
					kubeconfig,
					&cli.DurationFlag{Name: "ttl", Value: 24 * time.Hour, Usage: "how long the token is valid (0: forever)"},
					&cli.StringFlag{Name: "description", Usage: "a note kept with the token"},
				},
				Action: run("create"),
			},
			{Name: "list", Usage: "list join tokens", OnUsageError: usageError, Flags: []cli.Flag{kubeconfig}, Action: run("list")},
			{Name: "delete", Usage: "delete join tokens by ID", ArgsUsage: "ID...", OnUsageError: usageError, Flags: []cli.Flag{kubeconfig}, Action: run("delete")},
		},
	}
}

// snapshotCommand is `hw etcd-snapshot`: snapshots of a running server's
// etcd, with the server's own etcd client certificate from its data dir.
func snapshotCommand(a Actions) *cli.Command {
	dataDir := &cli.StringFlag{Name: flagDataDir, Aliases: []string{"d"}, EnvVars: []string{"HW_DATA_DIR"}, Value: config.NewServer().DataDir,
		Usage: "the server's data dir"}
	dir := &cli.StringFlag{Name: flagSnapshotDir, Usage: "snapshot folder (default: <data-dir>/server/db/snapshots)"}
	name := func(usage string) cli.Flag {
		return &cli.StringFlag{Name: "name", Value: "on-demand", Usage: usage}
	}
	run := func(op string) cli.ActionFunc {
		return func(c *cli.Context) error {
			req := SnapshotRequest{Op: op, DataDir: c.String(flagDataDir), Dir: c.String(flagSnapshotDir), Name: c.String("name"),
				Names: c.Args().Slice(), Retention: c.Int("snapshot-retention"), Compress: c.Bool(flagSnapshotCompress)}
			var err error
			if req.S3, err = s3Config(c); err != nil {
				return err
			}
			if op == "delete" && len(req.Names) == 0 {
				return fmt.Errorf("hw etcd-snapshot delete needs the name of a snapshot (see 'hw etcd-snapshot ls')")
			}
			for _, n := range req.Names {
				if strings.HasPrefix(n, "-") {
					return fmt.Errorf("%s after a snapshot name: flags go first (hw etcd-snapshot %s --data-dir DIR NAME...)", n, op)
				}
			}
			if op != "delete" && c.NArg() > 0 {
				return fmt.Errorf("hw etcd-snapshot %s takes no arguments (got %q)", op, c.Args().First())
			}
			if op == "save" || op == "prune" {
				if err := config.ValidateSnapshotName(req.Name); err != nil {
					return fmt.Errorf("--name %q: %v", req.Name, err)
				}
			}
			if op == "prune" && req.Retention < 1 {
				return fmt.Errorf("--snapshot-retention %d: keep at least 1 snapshot", req.Retention)
			}
			return a.EtcdSnapshot(c.Context, req)
		}
	}
	configFile := &cli.StringFlag{Name: flagConfig, Aliases: []string{"c"}, EnvVars: []string{"HW_CONFIG_FILE"}, Value: config.DefaultConfigFile,
		Usage: "the server's config file: its data-dir, etcd-snapshot-dir and etcd-s3… keys apply"}
	// The server's config file says where its data is; its other keys are
	// the server's business.
	shared := map[string]bool{flagDataDir: true, flagSnapshotDir: true, flagSnapshotCompress: true}
	for _, f := range s3Flags() {
		shared[f.Names()[0]] = true
	}
	before := func(c *cli.Context) error {
		return applyConfigKeys(c, c.String(flagConfig), c.IsSet(flagConfig), shared)
	}
	return &cli.Command{
		Name:  "etcd-snapshot",
		Usage: "save, list, delete and prune snapshots of a server's etcd",
		Subcommands: []*cli.Command{
			{Name: "save", Usage: "save a snapshot now", OnUsageError: usageError,
				Flags: append([]cli.Flag{configFile, dataDir, dir, name("first part of the file name: NAME-<node>-<unix time>"),
					&cli.BoolFlag{Name: flagSnapshotCompress, Aliases: []string{"snapshot-compress"}, Usage: "write it zstd-compressed (NAME-<node>-<unix time>.zst)"}}, s3Flags()...),
				Before: before, Action: run("save")},
			{Name: "ls", Aliases: []string{"list"}, Usage: "list snapshots", OnUsageError: usageError,
				Flags: append([]cli.Flag{configFile, dataDir, dir}, s3Flags()...), Before: before, Action: run("ls")},
			{Name: "delete", Usage: "delete snapshots by name", ArgsUsage: "NAME...", OnUsageError: usageError,
				Flags: append([]cli.Flag{configFile, dataDir, dir}, s3Flags()...), Before: before, Action: run("delete")},
			{Name: "prune", Usage: "keep the newest snapshots of one name, delete older ones", OnUsageError: usageError,
				Flags: append([]cli.Flag{configFile, dataDir, dir, name("which snapshots: those called NAME-<node>-…"),
					&cli.IntFlag{Name: "snapshot-retention", Value: config.DefaultSnapshotRetention, Usage: "how many to keep"}}, s3Flags()...),
				Before: before, Action: run("prune")},
		},
	}
}
