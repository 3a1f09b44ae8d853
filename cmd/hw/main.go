// Command hw is a Kubernetes distribution in one binary.
//
// Under the name kubectl, ctr or crictl (a symlink), hw runs that tool instead.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/containerd/containerd/v2/cmd/ctr/app"
	urfave "github.com/urfave/cli/v2"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	kubecli "k8s.io/component-base/cli"
	"k8s.io/klog/v2"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	"github.com/hw-k8s/hw/pkg/boot"
	"github.com/hw-k8s/hw/pkg/cli"
	"github.com/hw-k8s/hw/pkg/config"
	crictlpkg "github.com/hw-k8s/hw/pkg/crictl"
	"github.com/hw-k8s/hw/pkg/logging"
	"github.com/hw-k8s/hw/pkg/preflight"
	"github.com/hw-k8s/hw/pkg/profiling"
	"github.com/hw-k8s/hw/pkg/token"
	"github.com/hw-k8s/hw/pkg/version"
)

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	switch filepath.Base(args[0]) {
	case "kubectl":
		return exitCode(kubectl(args))
	case "ctr":
		return exitCode(ctr(args))
	case "crictl":
		return exitCode(crictl(args))
	}
	urfave.VersionPrinter = func(*urfave.Context) { fmt.Println(version.String()) }
	app := cli.NewApp(cli.Actions{
		Server:       server,
		Agent:        agent,
		Kubectl:      kubectl,
		Ctr:          ctr,
		Crictl:       crictl,
		Token:        tokenCmd,
		EtcdSnapshot: etcdSnapshot,
		CheckConfig:  checkConfig,
	})
	if err := app.Run(args); err != nil {
		fmt.Fprintf(os.Stderr, "hw: %v\n", err)
		return 1
	}
	return 0
}

func exitCode(err error) int {
	if err != nil {
		fmt.Fprintf(os.Stderr, "hw: %v\n", err)
		return 1
	}
	return 0
}

// server runs the control plane and a node until SIGINT or SIGTERM.
func server(ctx context.Context, cfg *config.Server) error {
	tuneGC()
	ctx, stop := daemonContext(ctx, cfg.Debug)
	defer stop()
	klog.FromContext(ctx).Info("Starting hw server", "version", version.Version, "kubernetes", version.Kubernetes,
		"node", cfg.NodeName, "nodeIP", cfg.NodeIP.String(), "dataDir", cfg.DataDir)
	stopProfiling, err := serveProfiles(ctx, cfg.EnablePprof)
	if err != nil {
		return err
	}
	defer stopProfiling()
	if cfg.ClusterReset {
		return stopIsClean(ctx, boot.ClusterReset(ctx, cfg))
	}
	return stopIsClean(ctx, boot.Server(ctx, cfg))
}

// agent joins a server and runs a node until SIGINT or SIGTERM.
func agent(ctx context.Context, cfg *config.Agent) error {
	tuneGC()
	ctx, stop := daemonContext(ctx, cfg.Debug)
	defer stop()
	klog.FromContext(ctx).Info("Starting hw agent", "version", version.Version, "kubernetes", version.Kubernetes,
		"server", cfg.Server, "node", cfg.NodeName, "nodeIP", cfg.NodeIP.String(), "dataDir", cfg.DataDir)
	stopProfiling, err := serveProfiles(ctx, cfg.EnablePprof)
	if err != nil {
		return err
	}
	defer stopProfiling()
	return stopIsClean(ctx, boot.Agent(ctx, cfg))
}

// defaultGCPercent is hw's GOGC. Go's default, 100, lets the heap grow to
// twice what is live before collecting; hw keeps the caches of every
// component in one heap, and at 50 an idle server holds about 60 MiB less
// for no measurable CPU (docs/benchmarks.md).
const defaultGCPercent = 50

// tuneGC applies defaultGCPercent unless GOGC is set in the environment.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// serveProfiles starts --enable-pprof's server first, so a profile can cover
// the whole start.
func serveProfiles(ctx context.Context, enabled bool) (stop func(), err error) {
	if !enabled {
		return func() {}, nil
	}
	return profiling.Serve(ctx, profiling.Address)
}

// stopIsClean: once SIGINT or SIGTERM asked hw to stop, an error from the
// step the stop interrupted (a component starting, a join being retried) is
// part of stopping, not a failure, and hw exits 0.
func stopIsClean(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		klog.FromContext(ctx).Info("Stopped during start-up", "interrupted", err.Error())
		return nil
	}
	return err
}

// daemonContext sets up logging and a context that SIGINT or SIGTERM
// cancels; a second signal exits at once.
func daemonContext(ctx context.Context, debug bool) (context.Context, context.CancelFunc) {
	verbosity := 0
	if debug {
		verbosity = 2
	}
	logging.Setup(os.Stderr, verbosity)
	ctx, stop := signalContext(ctx)
	return klog.NewContext(ctx, klog.Background().WithName("hw")), stop
}

func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		klog.Background().WithName("hw").Info("Shutting down; send the signal again to exit at once", "signal", s.String())
		cancel()
		<-sigs
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}

// kubectl runs the embedded kubectl. Without KUBECONFIG or ~/.kube/config it
// uses hw's admin kubeconfig, as k3s does.
func kubectl(args []string) error {
	if os.Getenv("KUBECONFIG") == "" {
		home, _ := os.UserHomeDir()
		if _, err := os.Stat(filepath.Join(home, ".kube", "config")); err != nil {
			if _, err := os.Stat(config.DefaultKubeconfigPath); err == nil {
				os.Setenv("KUBECONFIG", config.DefaultKubeconfigPath)
			}
		}
	}
	streams := kubectlcmd.KubectlOptions{Arguments: args}
	streams.In, streams.Out, streams.ErrOut = os.Stdin, os.Stdout, os.Stderr
	streams.PluginHandler = kubectlcmd.NewDefaultPluginHandler([]string{"kubectl"})
	cmd := kubectlcmd.NewDefaultKubectlCommandWithArgs(streams)
	cmd.SetArgs(args[1:])
	if err := kubecli.RunNoErrOutput(cmd); err != nil {
		util.CheckErr(err) // prints kubectl's own message and exits non-zero
	}
	return nil
}

// ctr runs containerd's ctr against hw's containerd and Kubernetes' namespace.
func ctr(args []string) error {
	setDefaultEnv("CONTAINERD_ADDRESS", filepath.Join(config.DefaultRuntimeDir, "containerd", "containerd.sock"))
	setDefaultEnv("CONTAINERD_NAMESPACE", "k8s.io")
	return app.New().Run(args)
}

// crictl runs the crictl built into hw (unpacked with hw's other programs
// into the data dir) with hw's containerd as its runtime and image
// endpoint; one installed on PATH serves if it cannot be unpacked.
func crictl(args []string) error {
	path, err := crictlpkg.Unpack(os.Getenv("HW_DATA_DIR"))
	if err != nil {
		self, selfErr := os.Executable()
		if selfErr != nil {
			return selfErr
		}
		var findErr error
		if path, findErr = crictlpkg.Find(os.Getenv("PATH"), self); findErr != nil {
			return fmt.Errorf("%v; and %w", err, findErr)
		}
	}
	socket := filepath.Join(config.DefaultRuntimeDir, "containerd", "containerd.sock")
	return syscall.Exec(path, append([]string{path}, args[1:]...), crictlpkg.Env(os.Environ(), socket))
}

// checkConfig prints every host check hw makes, one line each.
func checkConfig(ctx context.Context, dataDir string) error {
	findings := boot.CheckConfig(dataDir)
	counts := map[preflight.Status]int{}
	for _, f := range findings {
		fmt.Println(f)
		counts[f.Status]++
	}
	fmt.Printf("%d ok, %d warn, %d fail\n", counts[preflight.OK], counts[preflight.Warn], counts[preflight.Fail])
	if preflight.Failed(findings) {
		return errors.New("this host lacks something hw needs: see the fail lines above")
	}
	return nil
}

// tokenCmd creates, lists or deletes join tokens through the admin kubeconfig.
func tokenCmd(ctx context.Context, req cli.TokenRequest) error {
	restCfg, err := clientcmd.BuildConfigFromFlags("", req.Kubeconfig)
	if err != nil {
		return fmt.Errorf("cannot use the kubeconfig %s: %v; run this on a server, or pass --kubeconfig", req.Kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	switch req.Op {
	case "create":
		ca := restCfg.TLSClientConfig.CAData
		if len(ca) == 0 && restCfg.TLSClientConfig.CAFile != "" {
			if ca, err = os.ReadFile(restCfg.TLSClientConfig.CAFile); err != nil {
				return err
			}
		}
		if len(ca) == 0 {
			return fmt.Errorf("the kubeconfig %s names no cluster CA, which the token must pin", req.Kubeconfig)
		}
		t, _, err := token.Create(ctx, client, ca, req.TTL, req.Description, time.Now())
		if err != nil {
			return err
		}
		fmt.Println(t.String())
	case "list":
		tokens, err := token.List(ctx, client)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tEXPIRES\tDESCRIPTION")
		for _, jt := range tokens {
			expires := "never"
			if !jt.Expires.IsZero() {
				expires = jt.Expires.Format(time.RFC3339)
				if time.Now().After(jt.Expires) {
					expires += " (expired)"
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", jt.ID, expires, jt.Description)
		}
		return w.Flush()
	case "delete":
		for _, id := range req.IDs {
			if err := token.Delete(ctx, client, id); err != nil {
				return err
			}
			fmt.Printf("token %s deleted\n", id)
		}
	}
	return nil
}

func setDefaultEnv(key, value string) {
	if os.Getenv(key) == "" {
		os.Setenv(key, value)
	}
}
