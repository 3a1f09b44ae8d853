package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hw-k8s/hw/pkg/config"
)

// runServer parses args as `hw server` would and returns the config the
// server action received.
func runServer(t *testing.T, args ...string) (*config.Server, error) {
	t.Helper()
	var got *config.Server
	app := NewApp(Actions{Server: func(_ context.Context, cfg *config.Server) error {
		got = cfg
		return nil
	}})
	err := app.Run(append([]string{"hw", "server", "--node-ip", "192.0.2.1", "--node-name", "n1"}, args...))
	return got, err
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaults(t *testing.T) {
	cfg, err := runServer(t, "--config", writeFile(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/hw" || cfg.HTTPSPort != 6443 || cfg.ClusterCIDR.String() != "10.42.0.0/16" ||
		cfg.ServiceCIDR.String() != "10.43.0.0/16" || cfg.ClusterDNS.String() != "10.43.0.10" ||
		cfg.ClusterDomain != "cluster.local" || cfg.WriteKubeconfig != "/etc/hw/hw.yaml" || cfg.WriteKubeconfigMode != 0o600 ||
		cfg.FlannelBackend != "vxlan" || cfg.FlannelIface != "" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

// The flags' defaults are config.NewServer's: one place holds them.
func TestFlagDefaultsAreNewServers(t *testing.T) {
	got, err := runServer(t, "--config", writeFile(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	want := config.NewServer()
	want.NodeName, want.NodeIP = "n1", net.ParseIP("192.0.2.1").To4()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("flags without values give\n%+v\nwant config.NewServer()\n%+v", got, want)
	}
	if got.AdvertiseIP().String() != "192.0.2.1" || got.AdvertiseURL() != "https://192.0.2.1:6443" {
		t.Errorf("advertise address falls back to the node IP: got %s, %s", got.AdvertiseIP(), got.AdvertiseURL())
	}
}

func TestPrecedenceDefaultFileEnvFlag(t *testing.T) {
	file := writeFile(t, strings.Join([]string{
		"https-listen-port: 7443",     // file only: file beats default
		"cluster-domain: file.local",  // file and env: env wins
		"data-dir: /from/file",        // file, env and flag: flag wins
		`write-kubeconfig-mode: 0644`, // octal kept as written
		"tls-san: [a.example, b.example]",
		"kube-apiserver-arg:",
		"- v=2",
	}, "\n"))
	t.Setenv("HW_CONFIG_FILE", file)
	t.Setenv("HW_DATA_DIR", "/from/env")
	t.Setenv("HW_KUBECONFIG_OUTPUT", "/from/env/hw.yaml")
	cfg, err := runServer(t, "--data-dir", "/from/flag")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPSPort != 7443 {
		t.Errorf("https-listen-port = %d, want 7443 from the file", cfg.HTTPSPort)
	}
	if cfg.DataDir != "/from/flag" {
		t.Errorf("data-dir = %q, want the flag's value", cfg.DataDir)
	}
	if cfg.WriteKubeconfig != "/from/env/hw.yaml" {
		t.Errorf("write-kubeconfig = %q, want the environment's value", cfg.WriteKubeconfig)
	}
	if cfg.ClusterDomain != "file.local" {
		t.Errorf("cluster-domain = %q, want file.local", cfg.ClusterDomain)
	}
	if cfg.WriteKubeconfigMode != 0o644 {
		t.Errorf("write-kubeconfig-mode = %o, want 644", cfg.WriteKubeconfigMode)
	}
	if strings.Join(cfg.TLSSANs, ",") != "a.example,b.example" || strings.Join(cfg.ExtraArgs.APIServer, ",") != "v=2" {
		t.Errorf("lists from the file: tls-san=%v kube-apiserver-arg=%v", cfg.TLSSANs, cfg.ExtraArgs.APIServer)
	}
}

func TestEnvBeatsFile(t *testing.T) {
	file := writeFile(t, "data-dir: /from/file\n")
	t.Setenv("HW_DATA_DIR", "/from/env")
	cfg, err := runServer(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/from/env" {
		t.Errorf("data-dir = %q, want the environment's value", cfg.DataDir)
	}
}

func TestBadInputIsOneClearLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--no-such-flag"}, "unknown flag --no-such-flag"},
		{"unknown config key", []string{"--config", writeFile(t, "node-ip: 1.2.3.4\nno-such-key: 1\n")}, `unknown key "no-such-key"`},
		{"missing config file", []string{"--config", missing}, "cannot read config file " + missing},
		{"malformed CIDR", []string{"--cluster-cidr", "10.42.0.0/33"}, `--cluster-cidr "10.42.0.0/33" is not a CIDR`},
		{"overlapping ranges", []string{"--service-cidr", "10.42.0.0/16"}, "overlap"},
		{"bad IP", []string{"--node-ip", "300.1.1.1"}, `--node-ip "300.1.1.1" is not an IP address`},
		{"bad mode", []string{"--write-kubeconfig-mode", "rw"}, "not an octal file mode"},
		{"bad passthrough", []string{"--kube-apiserver-arg", "novalue"}, "want KEY=VALUE"},
		{"relative data dir", []string{"--data-dir", "rel/dir"}, "must be an absolute path"},
		{"unknown snapshotter", []string{"--snapshotter", "zfs"}, `--snapshotter "zfs" is not one of overlayfs, native`},
		{"unknown flannel backend", []string{"--flannel-backend", "wireguard"}, `--flannel-backend "wireguard" is not one of vxlan, host-gw, wireguard-native, none`},
		{"unknown add-on", []string{"--disable", "coredns,traefik"}, `--disable "traefik" is not a packaged add-on; choose from coredns, local-storage, servicelb, metrics-server`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runServer(t, tc.args...)
			if err == nil {
				t.Fatalf("no error for %v", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q", err, tc.want)
			}
		})
	}
}

func runAgent(t *testing.T, args ...string) (*config.Agent, error) {
	t.Helper()
	var got *config.Agent
	app := NewApp(Actions{Agent: func(_ context.Context, cfg *config.Agent) error {
		got = cfg
		return nil
	}})
	err := app.Run(append([]string{"hw", "agent", "--node-ip", "192.0.2.2", "--node-name", "a1", "--config", writeFile(t, "")}, args...))
	return got, err
}

func TestAgentRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no server", []string{"--token", "x"}, "--server is missing"},
		{"plain http", []string{"--server", "http://10.0.0.1:6443", "--token", "x"}, "must be https://"},
		{"no token", []string{"--server", "https://10.0.0.1:6443"}, "--token is missing"},
		{"not a URL", []string{"--server", "https://", "--token", "x"}, "is not a URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runAgent(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v; want one line containing %q", err, tc.want)
			}
		})
	}
	t.Setenv("HW_URL", "https://10.0.0.1:6443/")
	t.Setenv("HW_TOKEN", "K10abc::server:x")
	cfg, err := runAgent(t)
	if err != nil || cfg.Server != "https://10.0.0.1:6443" || cfg.Token != "K10abc::server:x" {
		t.Errorf("from the environment: %+v, %v", cfg, err)
	}
}

func TestAgentTokenFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("K10abc::server:from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := runAgent(t, "--server", "https://10.0.0.1:6443", "--token-file", file)
	if err != nil || cfg.Token != "K10abc::server:from-file" {
		t.Errorf("--token-file: %+v, %v", cfg, err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"both", []string{"--token", "x", "--token-file", file}, "both --token and --token-file"},
		{"missing file", []string{"--token-file", filepath.Join(dir, "absent")}, "--token-file: open " + filepath.Join(dir, "absent")},
		{"empty file", []string{"--token-file", os.DevNull}, "is empty"},
	} {
		_, err := runAgent(t, append([]string{"--server", "https://10.0.0.1:6443"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v; want one line containing %q", tc.name, err, tc.want)
		}
	}
}

func TestEtcdSnapshotCommands(t *testing.T) {
	var got SnapshotRequest
	app := NewApp(Actions{EtcdSnapshot: func(_ context.Context, req SnapshotRequest) error { got = req; return nil }})
	if err := app.Run([]string{"hw", "etcd-snapshot", "save", "--data-dir", "/d", "--name", "nightly"}); err != nil {
		t.Fatal(err)
	}
	if got.Op != "save" || got.DataDir != "/d" || got.Name != "nightly" {
		t.Errorf("save: %+v", got)
	}
	if err := app.Run([]string{"hw", "etcd-snapshot", "prune"}); err != nil || got.Name != "on-demand" || got.Retention != 5 {
		t.Errorf("prune defaults: %+v, %v", got, err)
	}
	for _, bad := range [][]string{
		{"delete"},
		{"delete", "snap-a", "--data-dir", "/d"},
		{"save", "--name", "../escape"},
		{"prune", "--snapshot-retention", "0"},
		{"ls", "extra"},
		{"ls", "--etcd-s3", "--etcd-s3-access-key", "k", "--etcd-s3-secret-key", "s"},
		{"ls", "--etcd-s3", "--etcd-s3-bucket", "b", "--etcd-s3-endpoint", "http://minio:9000", "--etcd-s3-access-key", "k", "--etcd-s3-secret-key", "s"},
		{"ls", "--etcd-s3", "--etcd-s3-bucket", "b"},
	} {
		err := app.Run(append([]string{"hw", "etcd-snapshot"}, bad...))
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("hw etcd-snapshot %v: %v, want one line refusing it", bad, err)
		}
	}
}

// `hw etcd-snapshot` finds the data dir in the server's config file and
// ignores the file's other keys.
func TestEtcdSnapshotReadsServerConfigFile(t *testing.T) {
	file := writeFile(t, "data-dir: /srv/hw\nnode-ip: 192.0.2.7\ncluster-cidr: 10.50.0.0/16\netcd-snapshot-compress: true\n")
	var got SnapshotRequest
	app := NewApp(Actions{EtcdSnapshot: func(_ context.Context, req SnapshotRequest) error { got = req; return nil }})
	if err := app.Run([]string{"hw", "etcd-snapshot", "ls", "--config", file}); err != nil {
		t.Fatal(err)
	}
	if got.DataDir != "/srv/hw" {
		t.Errorf("data dir %q, want the config file's /srv/hw", got.DataDir)
	}
	if err := app.Run([]string{"hw", "etcd-snapshot", "ls", "--config", file, "--data-dir", "/flag"}); err != nil || got.DataDir != "/flag" {
		t.Errorf("the flag must win over the file: %q, %v", got.DataDir, err)
	}
	// The server's compression setting applies to save.
	if err := app.Run([]string{"hw", "etcd-snapshot", "save", "--config", file}); err != nil || !got.Compress {
		t.Errorf("save with the file's etcd-snapshot-compress: %+v, %v", got, err)
	}
}
