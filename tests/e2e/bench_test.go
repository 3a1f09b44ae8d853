//go:build e2e && bench

package e2e

// The benchmark (`make bench`): start time, footprint, pod start-up latency,
// API latency, size and join time of hw, each node in its own network
// namespace as in the e2e tests. It measures and reports; it asserts no
// timing. Results go to stdout and to docs/benchmarks.md (BENCH_OUT).
//
// Another distribution on the same machine: set BENCH_START (a shell command
// that starts it from a clean state), BENCH_STOP (stops it and wipes its
// state), BENCH_KUBECONFIG, BENCH_PROCS (a regular expression matching the
// command lines of its processes, for the footprint) and BENCH_IMAGE (an
// image its nodes already have, which runs `sleep`-like forever when given
// BENCH_IMAGE_ARGS). Warm start and agent join are then not measured.

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const benchRuns = 3

// row is one line of the results table.
type row struct {
	section, what, unit string
	values              []float64
	goal                string
	note                string
}

type report struct {
	mu   sync.Mutex
	rows []row
}

func (r *report) add(section, what, unit, goal string, values ...float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, row{section: section, what: what, unit: unit, values: values, goal: goal})
	fmt.Printf("bench: %s: %s: median %s over %d\n", section, what, format(percentile(values, 50), unit), len(values))
}

func percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	sort.Float64s(s)
	i := int(p/100*float64(len(s)-1) + 0.5)
	return s[i]
}

func format(v float64, unit string) string {
	switch {
	case unit == "s":
		return fmt.Sprintf("%.2f s", v)
	case unit == "ms":
		return fmt.Sprintf("%.1f ms", v)
	case unit == "MiB":
		return fmt.Sprintf("%.0f MiB", v)
	case unit == "%":
		return fmt.Sprintf("%.1f %%", v)
	case unit == "ops/s":
		return fmt.Sprintf("%.0f ops/s", v)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

func (r *report) markdown(machine string) string {
	var b strings.Builder
	b.WriteString("# hw benchmarks\n\nMeasured by `make bench` (tests/e2e/bench_test.go). Median of the runs, with min and max; ")
	b.WriteString("latency rows give their percentiles instead. Goals are the project's (issue \"Benchmarks\"), not test assertions.\n\n")
	b.WriteString("## Machine\n\n" + machine + "\n## Results\n\n| what | median | min | max | runs | goal |\n| --- | --- | --- | --- | --- | --- |\n")
	section := ""
	for _, row := range r.rows {
		if row.section != section {
			section = row.section
			fmt.Fprintf(&b, "| **%s** | | | | | |\n", section)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %s |\n", row.what,
			format(percentile(row.values, 50), row.unit), format(slices.Min(row.values), row.unit), format(slices.Max(row.values), row.unit),
			len(row.values), row.goal)
	}
	return b.String()
}

// machineInfo describes the machine, and probes the data dir's disk.
func machineInfo(t *testing.T, dir string) string {
	var uts unix.Utsname
	unix.Uname(&uts)
	mem := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.Atoi(f[1])
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/1024/1024)
			}
		}
	}
	cgroup := "v1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cgroup = "v2"
	}
	cpu := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("- %d cores (%s), %s RAM\n- kernel %s, cgroup %s\n- fsync of a 4 KiB write in the data dir's filesystem: median %.2f ms, p99 %.2f ms (100 writes)\n- measured %s\n",
		runtime.NumCPU(), cpu, mem, unix.ByteSliceToString(uts.Release[:]), cgroup,
		percentile(fsyncProbe(t, dir), 50), percentile(fsyncProbe(t, dir), 99), time.Now().UTC().Format("2006-01-02"))
}

func fsyncProbe(t *testing.T, dir string) []float64 {
	f, err := os.CreateTemp(dir, "fsync-probe")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := bytes.Repeat([]byte{1}, 4096)
	var out []float64
	for range 100 {
		begin := time.Now()
		f.WriteAt(block, 0)
		f.Sync()
		out = append(out, float64(time.Since(begin).Microseconds())/1000)
	}
	return out
}

func TestBench(t *testing.T) {
	r := &report{}
	out := os.Getenv("BENCH_OUT")
	if out == "" {
		out = "../../docs/benchmarks.md"
	}
	machine := machineInfo(t, t.TempDir())
	if os.Getenv("BENCH_START") != "" {
		benchOther(t, r)
	} else {
		benchHW(t, r)
	}
	md := r.markdown(machine)
	fmt.Println(md)
	// The hand-written analysis below the table survives a new run.
	if old, err := os.ReadFile(out); err == nil {
		if i := strings.Index(string(old), "\n## Analysis"); i >= 0 {
			md += string(old[i:])
		}
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("written to %s", out)
}

// startTimes is what one start measured, in seconds from the process start.
type startTimes struct{ readyz, nodeReady, podRunning float64 }

func benchHW(t *testing.T, r *report) {
	netw := newNetwork(t)
	webapp := buildWebapp(t)

	// Cold, then warm starts, each on a node of its own.
	var cold, warm []startTimes
	var kept *hwNode
	for i := range benchRuns {
		node := newHWNode(t, netw.addNode(t, fmt.Sprintf("cold%d", i)))
		writeWebappImageFrom(t, webapp, filepath.Join(node.dataDir, "agent", "images", "webapp.tar"))
		begin := time.Now()
		p := node.server(t)
		cold = append(cold, measureStart(t, node, p, begin, "first"))
		if i < benchRuns-1 {
			p.stop(t, 2*time.Minute)
			node.killPods()
			continue
		}
		kept = node
		for j := range benchRuns {
			p.stop(t, 2*time.Minute)
			begin := time.Now()
			p = node.server(t)
			warm = append(warm, measureStart(t, node, p, begin, fmt.Sprintf("warm%d", j)))
		}
		startRows(r, "Cold start (fresh data dir)", cold, true)
		startRows(r, "Warm start (existing data dir)", warm, false)

		server := kept
		footprint(t, r, func() []int { return netnsPids(server.netns) })
		watchCfg := server.restConfig(t)
		watchCfg.Timeout = 0 // a watch lasts the whole load
		podLatency(t, r, kubernetes.NewForConfigOrDie(watchCfg), webappImage, []string{"serve"})
		apiLatency(t, r, server.restConfig(t))
		agentJoin(t, r, netw, server, webapp)
	}
	size(t, r, hwBinary(t))
}

func startRows(r *report, section string, runs []startTimes, withGoals bool) {
	pick := func(f func(startTimes) float64) []float64 {
		var out []float64
		for _, s := range runs {
			out = append(out, f(s))
		}
		return out
	}
	nodeGoal, podGoal := "", ""
	if withGoals {
		nodeGoal, podGoal = "≤ 6 s", "≤ 8 s"
	}
	r.add(section, "process start → /readyz ok", "s", "", pick(func(s startTimes) float64 { return s.readyz })...)
	r.add(section, "process start → node Ready", "s", nodeGoal, pick(func(s startTimes) float64 { return s.nodeReady })...)
	r.add(section, "process start → a first pod Running", "s", podGoal, pick(func(s startTimes) float64 { return s.podRunning })...)
}

// measureStart polls, as a client would, from the moment the process
// started: /readyz, the node's Ready condition (posted after the start), and
// a pod created as soon as the API takes it.
func measureStart(t *testing.T, node *hwNode, p *hwProcess, begin time.Time, podName string) startTimes {
	t.Helper()
	var st startTimes
	deadline := time.Now().Add(4 * time.Minute)
	alive := func(what string) {
		select {
		case <-p.exited:
			t.Fatalf("hw exited: %v\n%s", p.err, tail(p.logPath, 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 4 minutes\n%s", what, tail(p.logPath, 20))
		}
	}
	poll := func(what string, ok func() bool) float64 {
		for !ok() {
			alive(what)
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(begin).Seconds()
	}
	var client *kubernetes.Clientset
	st.readyz = poll("/readyz", func() bool {
		if client == nil {
			cfg := node.restConfigNoTest() // dials inside the node's namespace
			if cfg == nil {
				return false
			}
			cfg.Timeout = 2 * time.Second
			var err error
			if client, err = kubernetes.NewForConfig(cfg); err != nil {
				return false
			}
		}
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		return err == nil && string(body) == "ok"
	})
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-" + podName},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"},
		}}},
	}
	created := false
	running := false
	nodeReady := false
	for !(running && nodeReady) {
		if !created {
			_, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
			created = err == nil
		}
		if !nodeReady {
			if n, err := client.CoreV1().Nodes().Get(ctx, node.name, metav1.GetOptions{}); err == nil {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(begin.Truncate(time.Second)) {
						nodeReady = true
						st.nodeReady = time.Since(begin).Seconds()
					}
				}
			}
		}
		if created && !running {
			if got, err := client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{}); err == nil && got.Status.Phase == corev1.PodRunning {
				running = true
				st.podRunning = time.Since(begin).Seconds()
			}
		}
		alive(fmt.Sprintf("node Ready (%v) and a pod Running (%v)", nodeReady, running))
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("start %s: /readyz %.2f s, node Ready %.2f s, pod Running %.2f s", podName, st.readyz, st.nodeReady, st.podRunning)
	return st
}

// netnsPids are the processes of a node: hw and its shims (pods' processes
// live in their own network namespaces).
func netnsPids(netns string) []int {
	out, _ := exec.Command("ip", "netns", "pids", netns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, _ := strconv.Atoi(f)
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.HasPrefix(string(cmdline), "sleep") {
			continue // the test's namespace holder
		}
		pids = append(pids, pid)
	}
	return pids
}

// procStat reads a process's CPU time (ticks) and RSS (bytes).
func procStat(pid int) (ticks uint64, rss uint64, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	pages, _ := strconv.ParseUint(f[21], 10, 64)
	return utime + stime, pages * uint64(os.Getpagesize()), true
}

// footprint samples RSS and CPU% of the processes every 5 s for 120 s,
// starting 30 s after node Ready.
func footprint(t *testing.T, r *report, pids func() []int) {
	time.Sleep(30 * time.Second) // the settling time before sampling, not a readiness wait
	const ticksPerSecond = 100
	var rssMiB, cpuPct []float64
	prevTicks := map[int]uint64{}
	prevAt := time.Now()
	for _, pid := range pids() {
		prevTicks[pid], _, _ = procStat(pid)
	}
	for range 24 {
		time.Sleep(5 * time.Second)
		now := time.Now()
		var rss, ticks uint64
		cur := map[int]uint64{}
		for _, pid := range pids() {
			tk, rs, ok := procStat(pid)
			if !ok {
				continue
			}
			cur[pid] = tk
			rss += rs
			ticks += tk - prevTicks[pid]
		}
		rssMiB = append(rssMiB, float64(rss)/(1<<20))
		cpuPct = append(cpuPct, float64(ticks)/ticksPerSecond/now.Sub(prevAt).Seconds()*100)
		prevTicks, prevAt = cur, now
	}
	r.add("Idle footprint (hw and its shims, 120 s from 30 s after Ready)", "RSS, median", "MiB", "≤ 350 MiB", percentile(rssMiB, 50))
	r.add("Idle footprint (hw and its shims, 120 s from 30 s after Ready)", "RSS, p95", "MiB", "", percentile(rssMiB, 95))
	r.add("Idle footprint (hw and its shims, 120 s from 30 s after Ready)", "CPU (100 % = one core), median", "%", "", percentile(cpuPct, 50))
	r.add("Idle footprint (hw and its shims, 120 s from 30 s after Ready)", "CPU (100 % = one core), p95", "%", "", percentile(cpuPct, 95))
}

// podLatency creates pods at a rate and records, for each, create call →
// Running seen through a watch.
func podLatency(t *testing.T, r *report, client kubernetes.Interface, image string, args []string) {
	for _, load := range []struct {
		name     string
		count    int
		interval time.Duration
	}{{"50 pods at 20 QPS", 50, 50 * time.Millisecond}, {"30 pods at 1 per second", 30, time.Second}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		label := fmt.Sprintf("bench-%d", time.Now().UnixNano())
		w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "bench=" + label})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		created := map[string]time.Time{}
		var latencies []float64
		done := make(chan struct{})
		go func() {
			defer close(done)
			seen := map[string]bool{}
			for ev := range w.ResultChan() {
				if ev.Type != watch.Added && ev.Type != watch.Modified {
					continue
				}
				pod := ev.Object.(*corev1.Pod)
				if pod.Status.Phase != corev1.PodRunning || seen[pod.Name] {
					continue
				}
				at := time.Now()
				mu.Lock()
				seen[pod.Name] = true
				// The create call's start may be recorded just after the
				// watch saw the pod: wait for it.
				for created[pod.Name].IsZero() {
					mu.Unlock()
					time.Sleep(time.Millisecond)
					mu.Lock()
				}
				latencies = append(latencies, float64(at.Sub(created[pod.Name]).Microseconds())/1000)
				n := len(latencies)
				mu.Unlock()
				if n == load.count {
					return
				}
			}
		}()
		ticker := time.NewTicker(load.interval)
		for i := range load.count {
			name := fmt.Sprintf("%s-%d", label, i)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": label}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64),
					Containers:                    []corev1.Container{{Name: "c", Image: image, ImagePullPolicy: corev1.PullIfNotPresent, Args: args}},
				},
			}
			begin := time.Now()
			mu.Lock()
			created[name] = begin
			mu.Unlock()
			if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			<-ticker.C
		}
		ticker.Stop()
		select {
		case <-done:
		case <-ctx.Done():
		}
		mu.Lock()
		if len(latencies) < load.count {
			t.Fatalf("%s: only %d of %d pods seen Running (watch ended or 5 minutes passed)", load.name, len(latencies), load.count)
		}
		mu.Unlock()
		w.Stop()
		cancel()
		section := "Pod start-up latency, create → Running (watch), " + load.name
		goal := ""
		if load.count == 50 {
			goal = "p99 ≤ 1200 ms"
		}
		r.add(section, "p50", "ms", "", percentile(latencies, 50))
		r.add(section, "p90", "ms", "", percentile(latencies, 90))
		r.add(section, "p99", "ms", goal, percentile(latencies, 99))
		// Clean up so the next load starts from the same state.
		client.CoreV1().Pods("default").DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: new(int64)},
			metav1.ListOptions{LabelSelector: "bench=" + label})
		// Deleting is not measured; a slow clean-up is reported, not fatal.
		begin := time.Now()
		for {
			list, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "bench=" + label})
			if err == nil && len(list.Items) == 0 {
				t.Logf("%s: pods deleted in %s", load.name, time.Since(begin).Round(time.Second))
				break
			}
			if time.Since(begin) > 5*time.Minute {
				t.Logf("%s: %d pods still there 5 minutes after their deletion; going on", load.name, len(list.Items))
				break
			}
			time.Sleep(time.Second)
		}
	}
}

// apiLatency runs ConfigMap creates, then gets, with 1 and 10 clients.
func apiLatency(t *testing.T, r *report, cfg *rest.Config) {
	seconds := 30
	if v, err := strconv.Atoi(os.Getenv("BENCH_API_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100000, 100000 // measure the server, not client-side throttling
	for _, clients := range []int{1, 10} {
		for _, op := range []string{"create", "get"} {
			var mu sync.Mutex
			var latencies []float64
			var wg sync.WaitGroup
			end := time.Now().Add(time.Duration(seconds) * time.Second)
			for c := range clients {
				client, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					cms := client.CoreV1().ConfigMaps("default")
					for i := 0; time.Now().Before(end); i++ {
						name := fmt.Sprintf("bench-%d-%d-%d", clients, c, i)
						begin := time.Now()
						var err error
						if op == "create" {
							_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": "api"}}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
						} else {
							_, err = cms.Get(ctx, fmt.Sprintf("bench-%d-%d-%d", clients, c, i%50), metav1.GetOptions{})
						}
						if err != nil {
							t.Errorf("%s: %v", op, err)
							return
						}
						ms := float64(time.Since(begin).Microseconds()) / 1000
						mu.Lock()
						latencies = append(latencies, ms)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			section := fmt.Sprintf("API: ConfigMap %s, %d client(s), %d s", op, clients, seconds)
			goal := ""
			if op == "create" && clients == 10 {
				goal = "p99 ≤ 20 ms"
			}
			r.add(section, "throughput", "ops/s", "", float64(len(latencies))/float64(seconds))
			r.add(section, "p50", "ms", "", percentile(latencies, 50))
			r.add(section, "p99", "ms", goal, percentile(latencies, 99))
		}
	}
	client, _ := kubernetes.NewForConfig(cfg)
	client.CoreV1().ConfigMaps("default").DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "bench=api"})
}

// agentJoin starts fresh agents one after the other: process start → its
// Node Ready.
func agentJoin(t *testing.T, r *report, netw *network, server *hwNode, webapp string) {
	client := server.client(t)
	token, err := os.ReadFile(filepath.Join(server.dataDir, "server", "token"))
	if err != nil {
		t.Fatal(err)
	}
	var took []float64
	for i := range benchRuns {
		agent := newHWNode(t, netw.addNode(t, fmt.Sprintf("agent%d", i)))
		begin := time.Now()
		p := agent.agent(t, "https://"+hostPort(server.ip, 6443), strings.TrimSpace(string(token)))
		// Polled every 20 ms: eventually's 500 ms would blur the figure.
		for {
			select {
			case <-p.exited:
				t.Fatalf("agent exited: %v\n%s", p.err, tail(p.logPath, 20))
			default:
			}
			if n, err := client.CoreV1().Nodes().Get(context.Background(), agent.name, metav1.GetOptions{}); err == nil && nodeIsReady(n) {
				break
			}
			if time.Since(begin) > 4*time.Minute {
				t.Fatalf("agent %s not Ready within 4 minutes", agent.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		took = append(took, time.Since(begin).Seconds())
		p.stop(t, 2*time.Minute)
		agent.killPods()
		client.CoreV1().Nodes().Delete(context.Background(), agent.name, metav1.DeleteOptions{})
	}
	r.add("Agent join", "agent process start → its node Ready", "s", "≤ 5 s", took...)
}

// size is the binary, raw and compressed as a release would ship it.
func size(t *testing.T, r *report, bin string) {
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	var zs bytes.Buffer
	enc, _ := zstd.NewWriter(&zs, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	io.Copy(enc, bytes.NewReader(data))
	enc.Close()
	mib := func(n int) float64 { return float64(n) / (1 << 20) }
	r.add("Size of bin/hw", "raw", "MiB", "", mib(len(data)))
	r.add("Size of bin/hw", "gzip -9", "MiB", "", mib(gz.Len()))
	r.add("Size of bin/hw", "zstd (best)", "MiB", "≤ 60 MiB", mib(zs.Len()))
}

// benchOther measures another distribution started by BENCH_START.
func benchOther(t *testing.T, r *report) {
	sh := func(env string) {
		cmd := exec.Command("sh", "-c", os.Getenv(env))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v", env, err)
		}
	}
	kubeconfig := os.Getenv("BENCH_KUBECONFIG")
	procs := regexp.MustCompile(os.Getenv("BENCH_PROCS"))
	image := os.Getenv("BENCH_IMAGE")
	args := strings.Fields(os.Getenv("BENCH_IMAGE_ARGS"))
	var cold []startTimes
	for i := range benchRuns {
		begin := time.Now()
		// BENCH_START may run in the foreground until BENCH_STOP.
		start := exec.Command("sh", "-c", os.Getenv("BENCH_START"))
		start.Stdout, start.Stderr = os.Stderr, os.Stderr
		if err := start.Start(); err != nil {
			t.Fatalf("BENCH_START: %v", err)
		}
		go start.Wait()
		var st startTimes
		var client *kubernetes.Clientset
		eventually(t, 5*time.Minute, "/readyz", func(ctx context.Context) error {
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			if client, err = kubernetes.NewForConfig(cfg); err != nil {
				return err
			}
			body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			if err != nil || string(body) != "ok" {
				return fmt.Errorf("%v %s", err, body)
			}
			return nil
		})
		st.readyz = time.Since(begin).Seconds()
		eventually(t, 5*time.Minute, "a node Ready", func(ctx context.Context) error {
			nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, n := range nodes.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						return nil
					}
				}
			}
			return fmt.Errorf("none")
		})
		st.nodeReady = time.Since(begin).Seconds()
		name := fmt.Sprintf("bench-first-%d", i)
		eventually(t, 5*time.Minute, "a first pod Running", func(ctx context.Context) error {
			_, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image, ImagePullPolicy: corev1.PullIfNotPresent, Args: args}}}}, metav1.CreateOptions{})
			if err != nil && !strings.Contains(err.Error(), "already exists") {
				return err
			}
			p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil || p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("not Running (%v)", err)
			}
			return nil
		})
		st.podRunning = time.Since(begin).Seconds()
		cold = append(cold, st)
		if i < benchRuns-1 {
			sh("BENCH_STOP")
			continue
		}
		startRows(r, "Cold start (clean state)", cold, true)
		footprint(t, r, func() []int { return matchingPids(procs) })
		podLatency(t, r, client, image, args)
		cfg, _ := clientcmd.BuildConfigFromFlags("", kubeconfig)
		apiLatency(t, r, cfg)
		sh("BENCH_STOP")
	}
}

func matchingPids(re *regexp.Regexp) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if len(cmdline) > 0 && re.Match(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})) {
			pids = append(pids, pid)
		}
	}
	return pids
}
