package boot

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hw-k8s/hw/pkg/assets"
	"github.com/hw-k8s/hw/pkg/component/kubelet"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/join"
	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/token"
)

// testAssets stands for the programs hw carries: plans only need their folder.
func testAssets(t *testing.T) *assets.Set {
	t.Helper()
	set, err := assets.Load(fstest.MapFS{"manifest": {Data: []byte("")}})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func testServerConfig(t *testing.T) *config.Server {
	cfg := config.NewServer()
	cfg.DataDir = t.TempDir()
	cfg.NodeName = "server-1"
	cfg.NodeIP = net.IPv4(192, 0, 2, 10).To4()
	return cfg
}

// assertOrder checks that each step named in order comes after the one before.
func assertOrder(t *testing.T, p lifecycle.Plan, order ...string) {
	t.Helper()
	last := -1
	for _, name := range order {
		i := p.Index(name)
		if i < 0 {
			t.Errorf("plan %s has no step %q: %s", p.Name, name, strings.Join(p.Names(), " "))
			return
		}
		if i <= last {
			t.Errorf("plan %s: %q must come after %q: %s", p.Name, name, order[0], strings.Join(p.Names(), " "))
		}
		last = i
	}
}

func TestServerPlan(t *testing.T) {
	p := newServer(testServerConfig(t), testAssets(t), time.Now()).plan()
	assertOrder(t, p, "preflight", "node-preflight", "pki", "node-credentials", "kubeconfigs", "apiserver-files", "token",
		"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "cluster-roles", "join-info", "csr-approver")
	assertOrder(t, p, "pki", "kubeconfigs", "kube-apiserver")
	assertOrder(t, p, "addons", "manifests")
	assertOrder(t, p, "join-info", "assets", "containerd", "images", "kubelet", "kube-proxy", "dns")
	assertOrder(t, p, "kubelet", "pod-subnet", "flannel", "network-policy", "pod-network", "node-labels", "node-ready")
	assertOrder(t, p, "node-ready", "local-path-provisioner", "servicelb", "metrics-api", "cluster-ready")
	for _, s := range p.Steps {
		if (s.Run == nil) == (s.Component == nil) {
			t.Errorf("step %s must be a phase or a component", s.Name)
		}
	}
}

func TestServerPlanFollowsSettings(t *testing.T) {
	cfg := testServerConfig(t)
	cfg.FlannelBackend = config.FlannelNone
	cfg.Disable = []string{"servicelb", "metrics-server"}
	p := newServer(cfg, testAssets(t), time.Now()).plan()
	for _, gone := range []string{"flannel", "network-policy", "pod-network", "node-ready", "servicelb", "metrics-api"} {
		if p.Index(gone) >= 0 {
			t.Errorf("step %s is in the plan: %s", gone, strings.Join(p.Names(), " "))
		}
	}
	assertOrder(t, p, "kubelet", "node-registered", "node-labels", "local-path-provisioner")
}

// Every passthrough argument is parsed by its component's Init, which the
// plan runs before its first step: a bad one is refused, naming it, and
// nothing is written.
func TestServerPlanRefusesBadArgumentsBeforeAnyStep(t *testing.T) {
	for _, tc := range []struct {
		set  func(*config.ExtraArgs)
		want []string
	}{
		{func(e *config.ExtraArgs) { e.Kubelet = []string{"max-pods=banana"} }, []string{"--kubelet-arg max-pods=banana", "kubelet"}},
		{func(e *config.ExtraArgs) { e.APIServer = []string{"no-such-flag=1"} }, []string{"--kube-apiserver-arg no-such-flag=1", "kube-apiserver"}},
		{func(e *config.ExtraArgs) { e.ControllerManager = []string{"bogus-setting=2"} }, []string{"--kube-controller-manager-arg bogus-setting=2"}},
		{func(e *config.ExtraArgs) { e.Scheduler = []string{"no-such=3"} }, []string{"--kube-scheduler-arg no-such=3"}},
		{func(e *config.ExtraArgs) { e.KubeProxy = []string{"proxy-mode=carrier-pigeon"} }, []string{"--kube-proxy-arg", "carrier-pigeon"}},
		{func(e *config.ExtraArgs) { e.Etcd = []string{"bogus=1"} }, []string{"--etcd-arg bogus=1", "etcd"}},
	} {
		cfg := testServerConfig(t)
		tc.set(&cfg.ExtraArgs)
		var ran []string
		p := newServer(cfg, testAssets(t), time.Now()).plan()
		for i := range p.Steps {
			name := p.Steps[i].Name
			if p.Steps[i].Run != nil {
				p.Steps[i].Run = func(context.Context) error { ran = append(ran, name); return nil }
			}
		}
		m := lifecycle.NewManager()
		err := p.Run(context.Background(), m)
		m.Stop(context.Background())
		if err == nil {
			t.Errorf("%v: plan ran", tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %q", err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
		if len(ran) > 0 {
			t.Errorf("%v: steps ran before the refusal: %v", tc.want, ran)
		}
		if entries, _ := os.ReadDir(cfg.DataDir); len(entries) > 0 {
			t.Errorf("%v: the data dir is not empty", tc.want)
		}
	}
}

func TestServerPlanAcceptsGoodArguments(t *testing.T) {
	cfg := testServerConfig(t)
	cfg.ExtraArgs = config.ExtraArgs{
		Kubelet:   []string{"max-pods=50"},
		APIServer: []string{"--v=2"},
		KubeProxy: []string{"proxy-mode=nftables"},
		Etcd:      []string{"quota-backend-bytes=4294967296"},
	}
	if err := newServer(cfg, testAssets(t), time.Now()).plan().Init(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAgentPlans(t *testing.T) {
	cfg := config.NewAgent()
	cfg.DataDir, cfg.NodeName, cfg.NodeIP = t.TempDir(), "agent-1", net.IPv4(192, 0, 2, 11).To4()
	cfg.Server, cfg.Token = "https://192.0.2.10:6443", "secret"
	var joined *join.Result
	jp := joinPlan(cfg, tokenFor(t, cfg.Token), testAssets(t), &joined)
	assertOrder(t, jp, "preflight", "node-arguments", "node-preflight", "join")
	for _, s := range jp.Steps {
		if s.Component != nil {
			t.Errorf("the join plan starts %s: nothing may run before the join", s.Name)
		}
	}

	n, err := agentNode(cfg, &join.Result{Settings: join.Settings{
		ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local", FlannelBackend: "host-gw",
	}}, testAssets(t))
	if err != nil {
		t.Fatal(err)
	}
	p := agentPlan(n, cfg, kubeclient.NewShared(cfg.Paths().KubeProxyConfig), time.Now())
	assertOrder(t, p, "kubeconfigs", "apiserver-loadbalancer", "assets", "containerd", "images", "node-dirs", "kubelet", "kube-proxy", "pod-subnet", "flannel", "network-policy", "pod-network", "node-ready")
	for _, serverOnly := range []string{"etcd", "kube-apiserver", "pki", "csr-approver", "manifests"} {
		if p.Index(serverOnly) >= 0 {
			t.Errorf("agent plan runs %s", serverOnly)
		}
	}
	if err := p.Init(context.Background()); err != nil {
		t.Errorf("agent plan Init: %v", err)
	}
}

func TestAgentRefusesBadArgumentsBeforeJoining(t *testing.T) {
	cfg := config.NewAgent()
	cfg.DataDir, cfg.NodeName, cfg.NodeIP = t.TempDir(), "agent-1", net.IPv4(192, 0, 2, 11).To4()
	cfg.Server, cfg.Token = "https://192.0.2.10:6443", "secret"
	cfg.ExtraArgs.Kubelet = []string{"max-pods=50"}
	var joined *join.Result
	jp := joinPlan(cfg, tokenFor(t, cfg.Token), testAssets(t), &joined)
	i := jp.Index("node-arguments")
	if err := jp.Steps[i].Run(context.Background()); err != nil {
		t.Fatalf("good arguments refused before the join: %v", err)
	}
	cfg.ExtraArgs.Kubelet = []string{"max-pods=banana"}
	jp = joinPlan(cfg, tokenFor(t, cfg.Token), testAssets(t), &joined)
	err := jp.Steps[i].Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--kubelet-arg max-pods=banana") {
		t.Errorf("node-arguments = %v, want the bad --kubelet-arg named", err)
	}
}

func tokenFor(t *testing.T, s string) token.Token {
	t.Helper()
	tok, err := token.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestServerPlanSnapshots(t *testing.T) {
	cfg := testServerConfig(t)
	p := newServer(cfg, testAssets(t), time.Now()).plan()
	assertOrder(t, p, "etcd", "kube-apiserver", "join-info", "etcd-snapshots")

	cfg.EtcdSnapshots.Cron = "every tuesday"
	err := newServer(cfg, testAssets(t), time.Now()).plan().Init(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--etcd-snapshot-schedule-cron") {
		t.Errorf("a bad schedule: %v, want it refused naming the flag", err)
	}

	cfg.EtcdSnapshots.Disable = true
	if p := newServer(cfg, testAssets(t), time.Now()).plan(); p.Index("etcd-snapshots") >= 0 {
		t.Error("--etcd-disable-snapshots still schedules snapshots")
	}
}

func TestResetPlans(t *testing.T) {
	cfg := testServerConfig(t)
	cfg.ClusterReset = true
	p := newServer(cfg, testAssets(t), time.Now()).resetPlan()
	assertOrder(t, p, "not-running", "etcd-data", "etcd", "reset-done")

	cfg.ClusterResetRestorePath = "/backups/etcd-snapshot-server-1-1700000000"
	p = newServer(cfg, testAssets(t), time.Now()).resetPlan()
	assertOrder(t, p, "not-running", "restore")
	if p.Index("etcd") >= 0 || p.Index("kube-apiserver") >= 0 {
		t.Errorf("a restore starts nothing: %s", strings.Join(p.Names(), " "))
	}
	// A missing snapshot is refused before anything changes.
	err := p.Steps[p.Index("restore")].Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--cluster-reset-restore-path") {
		t.Errorf("restore of a missing file: %v", err)
	}
	if entries, _ := os.ReadDir(cfg.DataDir); len(entries) > 0 {
		t.Error("a refused restore wrote to the data dir")
	}
}

// With an external etcd no etcd runs, and nothing that needs the embedded
// one: snapshots, member removal, the quorum watch.
func TestServerPlanWithExternalDatastore(t *testing.T) {
	cfg := testServerConfig(t)
	cfg.Datastore.Endpoints = []string{"https://192.0.2.50:2379"}
	p := newServer(cfg, testAssets(t), time.Now()).plan()
	for _, gone := range []string{"etcd", "etcd-snapshots", "etcd-member-remover", "etcd-quorum-watch"} {
		if p.Index(gone) >= 0 {
			t.Errorf("step %s is in the plan: %s", gone, strings.Join(p.Names(), " "))
		}
	}
	assertOrder(t, p, "token", "kube-apiserver", "kube-controller-manager")
	if err := p.Init(context.Background()); err != nil {
		t.Errorf("Init: %v", err)
	}
}

// With the embedded etcd, every server removes deleted servers' members
// (one at a time, elected) and watches the quorum.
func TestServerPlanWatchesEtcdMembers(t *testing.T) {
	p := newServer(testServerConfig(t), testAssets(t), time.Now()).plan()
	assertOrder(t, p, "etcd", "kube-apiserver", "join-info", "etcd-member-remover")
	assertOrder(t, p, "etcd", "etcd-quorum-watch")
}

// The kubelet registers with the labels it may set and every taint; a
// server sets the others itself.
func TestNodeLabelsSplitBetweenKubeletAndServer(t *testing.T) {
	got := kubeletLabels([]string{"hw.example/site=lab", "node-role.kubernetes.io/worker=true", "node.kubernetes.io/pool=a"})
	if strings.Join(got, ",") != "hw.example/site=lab,node.kubernetes.io/pool=a" {
		t.Errorf("kubelet labels %v", got)
	}
	args := kubelet.Config{Labels: got, Taints: []string{"dedicated=edge:NoSchedule"}, NodeIP: net.IPv4(192, 0, 2, 1), ClusterDNS: net.IPv4(10, 43, 0, 10)}.Args()
	if args["node-labels"] != "hw.example/site=lab,node.kubernetes.io/pool=a" || args["register-with-taints"] != "dedicated=edge:NoSchedule" {
		t.Errorf("kubelet args: node-labels %q, register-with-taints %q", args["node-labels"], args["register-with-taints"])
	}
}
