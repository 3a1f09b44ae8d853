// Package cli binds hw's command line, environment and config file onto
// config.Server. The config file takes the same keys as the flags, so there
// is one schema; precedence is default < config file < environment < flag.
package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hw-k8s/hw/pkg/config"
)

// Flag names, shared by the flag definitions, the config file and toServer.
const (
	flagConfig               = "config"
	flagDataDir              = "data-dir"
	flagToken                = "token"
	flagTokenFile            = "token-file"
	flagServer               = "server"
	flagDatastoreEndpoint    = "datastore-endpoint"
	flagDatastoreCAFile      = "datastore-cafile"
	flagDatastoreCertFile    = "datastore-certfile"
	flagDatastoreKeyFile     = "datastore-keyfile"
	flagNodeName             = "node-name"
	flagNodeIP               = "node-ip"
	flagBindAddress          = "bind-address"
	flagHTTPSPort            = "https-listen-port"
	flagAdvertiseAddress     = "advertise-address"
	flagTLSSAN               = "tls-san"
	flagClusterCIDR          = "cluster-cidr"
	flagServiceCIDR          = "service-cidr"
	flagClusterDNS           = "cluster-dns"
	flagClusterDomain        = "cluster-domain"
	flagFlannelBackend       = "flannel-backend"
	flagFlannelIface         = "flannel-iface"
	flagSnapshotter          = "snapshotter"
	flagWriteKubeconfig      = "write-kubeconfig"
	flagWriteKubeconfigMode  = "write-kubeconfig-mode"
	flagDisable              = "disable"
	flagDisableNetworkPolicy = "disable-network-policy"
	flagDebug                = "debug"
	flagEnablePprof          = "enable-pprof"
	flagAPIServerArg         = "kube-apiserver-arg"
	flagControllerArg        = "kube-controller-manager-arg"
	flagSchedulerArg         = "kube-scheduler-arg"
	flagEtcdArg              = "etcd-arg"
	flagKubeletArg           = "kubelet-arg"
	flagKubeProxyArg         = "kube-proxy-arg"

	flagSnapshotCron        = "etcd-snapshot-schedule-cron"
	flagSnapshotRetention   = "etcd-snapshot-retention"
	flagSnapshotName        = "etcd-snapshot-name"
	flagSnapshotDir         = "etcd-snapshot-dir"
	flagSnapshotDisable     = "etcd-disable-snapshots"
	flagSnapshotCompress    = "etcd-snapshot-compress"
	flagNodeLabel           = "node-label"
	flagNodeTaint           = "node-taint"
	flagS3                  = "etcd-s3"
	flagS3Endpoint          = "etcd-s3-endpoint"
	flagS3EndpointCA        = "etcd-s3-endpoint-ca"
	flagS3Bucket            = "etcd-s3-bucket"
	flagS3Folder            = "etcd-s3-folder"
	flagS3Region            = "etcd-s3-region"
	flagS3AccessKey         = "etcd-s3-access-key"
	flagS3SecretKey         = "etcd-s3-secret-key"
	flagS3Insecure          = "etcd-s3-insecure"
	flagClusterReset        = "cluster-reset"
	flagClusterResetRestore = "cluster-reset-restore-path"
)

// commonFlags are shared by `hw server` and `hw agent`; defaults come from
// config.NewServer and config.NewAgent, which agree on these.
func commonFlags() []cli.Flag {
	d := config.NewAgent()
	return []cli.Flag{
		&cli.StringFlag{Name: flagConfig, Aliases: []string{"c"}, EnvVars: []string{"HW_CONFIG_FILE"}, Value: config.DefaultConfigFile,
			Usage: "read flags from this YAML file (keys are flag names)"},
		&cli.StringFlag{Name: flagDataDir, Aliases: []string{"d"}, EnvVars: []string{"HW_DATA_DIR"}, Value: d.DataDir,
			Usage: "folder for hw's state: certificates, etcd, images"},
		&cli.StringFlag{Name: flagNodeName, EnvVars: []string{"HW_NODE_NAME"}, Usage: "node name (default: the host name)"},
		&cli.StringFlag{Name: flagNodeIP, Aliases: []string{"i"}, EnvVars: []string{"HW_NODE_IP"}, Usage: "IPv4 address of this node (default: address of the default-route interface)"},
		&cli.StringFlag{Name: flagFlannelIface, Usage: "interface (name or address) for pod traffic between nodes (default: the one holding --node-ip)"},
		&cli.StringFlag{Name: flagSnapshotter, Usage: "containerd snapshotter: " + strings.Join(config.Snapshotters, ", ") + " (default: overlayfs where the kernel has it, else native)"},
		&cli.BoolFlag{Name: flagDebug, EnvVars: []string{"HW_DEBUG"}, Usage: "log more: component arguments, phase timings, verbose component logs"},
		&cli.BoolFlag{Name: flagEnablePprof, Usage: "serve Go CPU and memory profiles of the hw process at http://127.0.0.1:6060/debug/pprof/"},
		&cli.StringSliceFlag{Name: flagKubeletArg, Usage: "extra KEY=VALUE argument for kubelet (repeatable)"},
		&cli.StringSliceFlag{Name: flagNodeLabel, Usage: "label KEY=VALUE for this node, set when it registers (repeatable)"},
		&cli.StringSliceFlag{Name: flagNodeTaint, Usage: "taint KEY=VALUE:EFFECT for this node, set when it registers (repeatable)"},
		&cli.StringSliceFlag{Name: flagKubeProxyArg, Usage: "extra KEY=VALUE argument for kube-proxy (repeatable)"},
	}
}

// serverFlags are `hw server`'s flags, with config.NewServer's defaults.
func serverFlags() []cli.Flag {
	d := config.NewServer()
	return append(append(commonFlags(),
		&cli.StringFlag{Name: flagServer, Aliases: []string{"s"}, EnvVars: []string{"HW_URL"}, Usage: "join the cluster of this existing server, https://HOST:6443, as another server (needs the server token)"},
		&cli.StringFlag{Name: flagToken, Aliases: []string{"t"}, EnvVars: []string{"HW_TOKEN"}, Usage: "join secret (default: random, written to <data-dir>/server/token); with --server, the existing server's token"},
		&cli.StringFlag{Name: flagTokenFile, EnvVars: []string{"HW_TOKEN_FILE"}, Usage: "read --token from this file"},
		&cli.StringFlag{Name: flagBindAddress, Value: d.BindAddress.String(), Usage: "address kube-apiserver listens on"},
		&cli.IntFlag{Name: flagHTTPSPort, Value: d.HTTPSPort, Usage: "port kube-apiserver listens on"},
		&cli.StringFlag{Name: flagAdvertiseAddress, Usage: "address kube-apiserver advertises to the cluster (default: --node-ip)"},
		&cli.StringSliceFlag{Name: flagTLSSAN, Usage: "extra host name or IP for the apiserver's certificate (repeatable)"},
		&cli.StringFlag{Name: flagClusterCIDR, Value: d.ClusterCIDR.String(), Usage: "pod network; each node gets a /24 of it"},
		&cli.StringFlag{Name: flagServiceCIDR, Value: d.ServiceCIDR.String(), Usage: "Service ClusterIP range"},
		&cli.StringFlag{Name: flagClusterDNS, Value: d.ClusterDNS.String(), Usage: "ClusterIP of the cluster DNS service"},
		&cli.StringFlag{Name: flagClusterDomain, Value: d.ClusterDomain, Usage: "cluster DNS domain"},
		&cli.StringFlag{Name: flagFlannelBackend, Value: d.FlannelBackend,
			Usage: "pod network between nodes: " + strings.Join(config.FlannelBackends, ", ") + " (none: install your own CNI)"},
		&cli.StringFlag{Name: flagWriteKubeconfig, Aliases: []string{"o"}, EnvVars: []string{"HW_KUBECONFIG_OUTPUT"}, Value: d.WriteKubeconfig,
			Usage: "write the admin kubeconfig here (empty: don't)"},
		&cli.StringFlag{Name: flagWriteKubeconfigMode, EnvVars: []string{"HW_KUBECONFIG_MODE"}, Value: fmt.Sprintf("%04o", d.WriteKubeconfigMode),
			Usage: "file mode of the admin kubeconfig, octal"},
		&cli.StringSliceFlag{Name: flagDisable, Usage: "do not deploy this packaged add-on (repeatable)"},
		&cli.BoolFlag{Name: flagDisableNetworkPolicy, Usage: "enforce no NetworkPolicies on any node (cluster-wide; agents take the cluster's setting)"},
		&cli.StringSliceFlag{Name: flagAPIServerArg, Usage: "extra KEY=VALUE argument for kube-apiserver (repeatable)"},
		&cli.StringSliceFlag{Name: flagControllerArg, Usage: "extra KEY=VALUE argument for kube-controller-manager (repeatable)"},
		&cli.StringSliceFlag{Name: flagSchedulerArg, Usage: "extra KEY=VALUE argument for kube-scheduler (repeatable)"},
		&cli.StringSliceFlag{Name: flagEtcdArg, Usage: "extra KEY=VALUE setting for etcd (repeatable)"},
		&cli.StringFlag{Name: flagDatastoreEndpoint, EnvVars: []string{"HW_DATASTORE_ENDPOINT"}, Usage: "use this external etcd cluster (client URLs, comma-separated) instead of an embedded etcd"},
		&cli.StringFlag{Name: flagDatastoreCAFile, EnvVars: []string{"HW_DATASTORE_CAFILE"}, Usage: "CA of the external etcd's serving certificates"},
		&cli.StringFlag{Name: flagDatastoreCertFile, EnvVars: []string{"HW_DATASTORE_CERTFILE"}, Usage: "client certificate for the external etcd"},
		&cli.StringFlag{Name: flagDatastoreKeyFile, EnvVars: []string{"HW_DATASTORE_KEYFILE"}, Usage: "client key for the external etcd"},
		&cli.StringFlag{Name: flagSnapshotCron, Value: d.EtcdSnapshots.Cron, Usage: "when to take scheduled etcd snapshots, in cron format"},
		&cli.IntFlag{Name: flagSnapshotRetention, Value: d.EtcdSnapshots.Retention, Usage: "how many scheduled snapshots of this node to keep"},
		&cli.StringFlag{Name: flagSnapshotName, Value: d.EtcdSnapshots.Name, Usage: "first part of scheduled snapshots' file names"},
		&cli.StringFlag{Name: flagSnapshotDir, Usage: "folder for etcd snapshots (default: <data-dir>/server/db/snapshots)"},
		&cli.BoolFlag{Name: flagSnapshotDisable, Usage: "take no scheduled etcd snapshots"},
		&cli.BoolFlag{Name: flagSnapshotCompress, Usage: "write etcd snapshots zstd-compressed (NAME-<node>-<unix time>.zst)"},
		&cli.BoolFlag{Name: flagClusterReset, Usage: "make this server's etcd a single-member cluster (from --cluster-reset-restore-path when given), then exit"},
		&cli.StringFlag{Name: flagClusterResetRestore, Usage: "with --cluster-reset: the snapshot to restore, a file or a snapshot's name (local, or in S3 with --etcd-s3)"},
	), s3Flags()...)
}

// agentFlags are `hw agent`'s flags.
func agentFlags() []cli.Flag {
	return append(commonFlags(),
		&cli.StringFlag{Name: flagServer, Aliases: []string{"s"}, EnvVars: []string{"HW_URL"}, Usage: "server to join, https://HOST:6443"},
		&cli.StringFlag{Name: flagToken, Aliases: []string{"t"}, EnvVars: []string{"HW_TOKEN"}, Usage: "join token, from <data-dir>/server/token on the server"},
		&cli.StringFlag{Name: flagTokenFile, EnvVars: []string{"HW_TOKEN_FILE"}, Usage: "read --token from this file"},
	)
}

// s3Flags choose an S3-compatible store for etcd snapshots; `hw server` and
// `hw etcd-snapshot` take the same ones.
func s3Flags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: flagS3, Usage: "copy etcd snapshots to S3 too"},
		&cli.StringFlag{Name: flagS3Endpoint, Value: config.DefaultS3Endpoint, Usage: "S3 endpoint, HOST[:PORT]"},
		&cli.StringFlag{Name: flagS3EndpointCA, Usage: "PEM file of CAs to trust for the S3 endpoint"},
		&cli.StringFlag{Name: flagS3Bucket, Usage: "S3 bucket for etcd snapshots"},
		&cli.StringFlag{Name: flagS3Folder, Usage: "folder in the S3 bucket"},
		&cli.StringFlag{Name: flagS3Region, Value: config.DefaultS3Region, Usage: "S3 region"},
		&cli.StringFlag{Name: flagS3AccessKey, EnvVars: []string{"AWS_ACCESS_KEY_ID"}, Usage: "S3 access key"},
		&cli.StringFlag{Name: flagS3SecretKey, EnvVars: []string{"AWS_SECRET_ACCESS_KEY"}, Usage: "S3 secret key"},
		&cli.BoolFlag{Name: flagS3Insecure, Usage: "talk to S3 over plain HTTP"},
	}
}

// s3Config is the S3 store the flags choose; nil without --etcd-s3.
func s3Config(c *cli.Context) (*config.EtcdS3, error) {
	if !c.Bool(flagS3) {
		return nil, nil
	}
	s3 := &config.EtcdS3{
		Endpoint:   c.String(flagS3Endpoint),
		EndpointCA: c.String(flagS3EndpointCA),
		Bucket:     c.String(flagS3Bucket),
		Folder:     c.String(flagS3Folder),
		Region:     c.String(flagS3Region),
		AccessKey:  c.String(flagS3AccessKey),
		SecretKey:  c.String(flagS3SecretKey),
		Insecure:   c.Bool(flagS3Insecure),
	}
	return s3, s3.Validate()
}
