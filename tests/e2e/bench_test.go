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
//
// BENCH_ONLY=start,footprint,pods,api,join,snapshot,ha,size measures only those parts
// (and writes docs/benchmarks.md only if BENCH_OUT says where). hw runs with
// --enable-pprof, and CPU and heap profiles of the first run of each part are
// saved in BENCH_PROFILES (default build/bench) for `go tool pprof`.

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
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
}

type report struct {
	mu   sync.Mutex
	rows []row
}

// add records values for a row; later runs of the same row add to it.
func (r *report) add(section, what, unit, goal string, values ...float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Printf("bench: %s: %s: %s\n", section, what, formatAll(values, unit))
	for i := range r.rows {
		if r.rows[i].section == section && r.rows[i].what == what {
			r.rows[i].values = append(r.rows[i].values, values...)
			return
		}
	}
	r.rows = append(r.rows, row{section: section, what: what, unit: unit, values: values, goal: goal})
}

func formatAll(values []float64, unit string) string {
	var out []string
	for _, v := range values {
		out = append(out, format(v, unit))
	}
	return strings.Join(out, ", ")
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
	b.WriteString("# hw benchmarks\n\nMeasured by `make bench` (tests/e2e/bench_test.go). Each row is the median of its runs, with min and max. ")
	b.WriteString("Percentiles (p50, p95, p99) are taken within each run, and the row gives the median, min and max of those per-run figures; ")
	b.WriteString("size is measured once, as it does not vary. ")
	b.WriteString("Goals are the project's (issue \"Benchmarks\"), not test assertions.\n\n")
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
	if out == "" && os.Getenv("BENCH_ONLY") == "" {
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
	if out == "" {
		return
	}
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

// measuring reports whether BENCH_ONLY (default: everything) names part.
func measuring(part string) bool {
	only := os.Getenv("BENCH_ONLY")
	return only == "" || slices.Contains(strings.Split(only, ","), part)
}

// startTimes is what one start measured, in seconds from the process start.
type startTimes struct{ readyz, nodeReady, podRunning float64 }

func benchHW(t *testing.T, r *report) {
	netw := newNetwork(t)
	webapp := buildWebapp(t)
	profiles := newProfiler(t)

	// Cold, then warm starts, each cold one on a node of its own; the last
	// node stays for the rest.
	var server *hwNode
	if measuring("start") {
		var cold, warm []startTimes
		for i := range benchRuns {
			node := newHWNode(t, netw.addNode(t, fmt.Sprintf("cold%d", i)))
			writeWebappImageFrom(t, webapp, filepath.Join(node.dataDir, "agent", "images", "webapp.tar"))
			begin := time.Now()
			p := node.server(t, "--enable-pprof")
			if i == 0 {
				// From the moment the profile port answers to well past Ready.
				profiles.cpu(node, "cold-start", 25*time.Second)
			}
			cold = append(cold, measureStart(t, node, p, begin, "first"))
			profiles.wait()
			if i == 0 {
				profiles.saveLog(p, "cold-start.log")
			}
			if i < benchRuns-1 {
				p.stop(t, 2*time.Minute)
				node.killPods()
				continue
			}
			server = node
			for j := range benchRuns {
				p.stop(t, 2*time.Minute)
				begin := time.Now()
				p = node.server(t, "--enable-pprof")
				warm = append(warm, measureStart(t, node, p, begin, fmt.Sprintf("warm%d", j)))
			}
		}
		startRows(r, "Cold start (fresh data dir)", cold, true)
		startRows(r, "Warm start (existing data dir)", warm, false)
	} else if measuring("footprint") || measuring("pods") || measuring("api") || measuring("join") {
		server = newHWNode(t, netw.addNode(t, "server"))
		writeWebappImageFrom(t, webapp, filepath.Join(server.dataDir, "agent", "images", "webapp.tar"))
		p := server.server(t, "--enable-pprof")
		measureStart(t, server, p, time.Now(), "first")
	}

	if measuring("footprint") {
		time.Sleep(30 * time.Second) // the settling time before sampling, not a readiness wait
		for i := range benchRuns {
			if i == 0 {
				profiles.cpu(server, "idle", 60*time.Second)
			}
			footprint(t, r, func() []int { return netnsPids(server.netns) })
			profiles.wait()
			if i == 0 {
				profiles.heap(server, "idle")
			}
		}
	}
	if measuring("pods") {
		watchCfg := server.restConfig(t)
		watchCfg.Timeout = 0 // a watch lasts the whole load
		for i := range benchRuns {
			shims := func() int { return countShims(netnsPids(server.netns)) }
			podLatency(t, r, kubernetes.NewForConfigOrDie(watchCfg), webappImage, []string{"serve"}, shims, func(load string) {
				if i == 0 && load == burstLoad {
					profiles.cpu(server, "pods-burst", 20*time.Second)
				}
			})
			profiles.wait()
		}
	}
	if measuring("api") {
		for i := range benchRuns {
			apiLatency(t, r, server.restConfig(t), fmt.Sprint(i), func(op string, clients int) {
				if i == 0 && op == "create" && clients == 10 {
					profiles.cpu(server, "api-create-10", 20*time.Second)
				}
			})
			profiles.wait()
		}
	}
	if measuring("join") {
		agentJoin(t, r, netw, server)
	}
	if measuring("snapshot") {
		snapshotTimes(t, r, netw)
	}
	if measuring("ha") {
		haTimes(t, r, netw)
	}
	if measuring("size") {
		size(t, r, hwBinary(t))
	}
}

// snapshotTimes measures `hw etcd-snapshot save` and a restore with
// `hw server --cluster-reset --cluster-reset-restore-path` on a server
// holding 1,000 ConfigMaps of 1 KiB, on a node of its own.
func snapshotTimes(t *testing.T, r *report, netw *network) {
	node := newHWNode(t, netw.addNode(t, "snapshots"))
	p := node.server(t, "--etcd-disable-snapshots")
	node.waitReady(t, p, 4*time.Minute)
	client := node.client(t)
	value := strings.Repeat("x", 1024)
	for i := range 1000 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%04d", i)}, Data: map[string]string{"v": value}}
		if _, err := client.CoreV1().ConfigMaps("default").Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var saves, restores, sizes []float64
	var last string
	for i := range benchRuns {
		begin := time.Now()
		out, err := node.hwCommand(t, "etcd-snapshot", "save", "--data-dir", node.dataDir, "--name", fmt.Sprintf("bench%d", i))
		if err != nil {
			t.Fatalf("save: %v\n%s", err, out)
		}
		saves = append(saves, time.Since(begin).Seconds())
		last = strings.Fields(strings.TrimPrefix(out, "Saved snapshot "))[0]
		st, err := os.Stat(filepath.Join(node.dataDir, "server", "db", "snapshots", last))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, float64(st.Size())/(1<<20))
	}
	p.stop(t, 2*time.Minute)
	for range benchRuns {
		begin := time.Now()
		reset := node.server(t, "--cluster-reset", "--cluster-reset-restore-path", last)
		<-reset.exited
		if reset.err != nil {
			t.Fatalf("restore: %v\n%s", reset.err, tail(reset.logPath, 20))
		}
		restores = append(restores, time.Since(begin).Seconds())
	}
	const section = "etcd snapshots (1,000 ConfigMaps of 1 KiB)"
	r.add(section, "hw etcd-snapshot save", "s", "", saves...)
	r.add(section, "snapshot size", "MiB", "", sizes...)
	r.add(section, "hw server --cluster-reset --cluster-reset-restore-path (process start → exit)", "s", "", restores...)
}

// profiler saves profiles from hw's --enable-pprof port, in the background.
type profiler struct {
	t       *testing.T
	dir     string
	pending sync.WaitGroup
}

func newProfiler(t *testing.T) *profiler {
	dir := os.Getenv("BENCH_PROFILES")
	if dir == "" {
		dir = "../../build/bench"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &profiler{t: t, dir: dir}
}

// cpu takes a CPU profile of node's hw for the given time, starting as soon
// as the profile port answers; wait waits for it.
func (p *profiler) cpu(node *hwNode, name string, d time.Duration) {
	p.fetch(node, name+".cpu.pprof", fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), d+time.Minute)
}

// heap saves the live heap of node's hw now.
func (p *profiler) heap(node *hwNode, name string) {
	p.fetch(node, name+".heap.pprof", "/debug/pprof/heap", time.Minute)
	p.wait()
}

func (p *profiler) wait() { p.pending.Wait() }

// saveLog keeps hw's log so far beside the profiles: its "Component ready"
// lines time each step.
func (p *profiler) saveLog(proc *hwProcess, file string) {
	data, err := os.ReadFile(proc.logPath)
	if err == nil {
		err = os.WriteFile(filepath.Join(p.dir, file), data, 0o644)
	}
	if err != nil {
		p.t.Logf("log %s not saved: %v", file, err)
	}
}

func (p *profiler) fetch(node *hwNode, file, path string, timeout time.Duration) {
	client := &http.Client{Transport: &http.Transport{DialContext: node.dial}, Timeout: timeout}
	p.pending.Add(1)
	go func() {
		defer p.pending.Done()
		deadline := time.Now().Add(timeout)
		for {
			resp, err := client.Get("http://127.0.0.1:6060" + path)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					dest := filepath.Join(p.dir, file)
					if err := os.WriteFile(dest, body, 0o644); err != nil {
						p.t.Errorf("profile %s: %v", file, err)
					}
					return
				}
				err = fmt.Errorf("%s: %s", resp.Status, body)
			}
			if time.Now().After(deadline) {
				// A missing profile is reported, not fatal: the figures stand.
				p.t.Logf("profile %s not taken: %v", file, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
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

// rssAnon is a process's anonymous resident memory, in bytes: RSS without
// the pages of the program file, which the kernel can drop and read again.
func rssAnon(pid int) uint64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "RssAnon:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// footprint samples RSS and CPU% of the processes every 5 s for 120 s: one run.
func footprint(t *testing.T, r *report, pids func() []int) {
	const ticksPerSecond = 100
	var rssMiB, anonMiB, cpuPct []float64
	prevTicks := map[int]uint64{}
	prevAt := time.Now()
	for _, pid := range pids() {
		prevTicks[pid], _, _ = procStat(pid)
	}
	for range 24 {
		time.Sleep(5 * time.Second)
		now := time.Now()
		var rss, anon, ticks uint64
		cur := map[int]uint64{}
		for _, pid := range pids() {
			tk, rs, ok := procStat(pid)
			if !ok {
				continue
			}
			cur[pid] = tk
			rss += rs
			anon += rssAnon(pid)
			ticks += tk - prevTicks[pid]
		}
		rssMiB = append(rssMiB, float64(rss)/(1<<20))
		anonMiB = append(anonMiB, float64(anon)/(1<<20))
		cpuPct = append(cpuPct, float64(ticks)/ticksPerSecond/now.Sub(prevAt).Seconds()*100)
		prevTicks, prevAt = cur, now
	}
	r.add("Idle footprint (hw and its shims, 120 s from 30 s after Ready)", "RSS, median", "MiB", "≤ 350 MiB", percentile(rssMiB, 50))
	r.add("Idle footprint (hw and its shims, 120 s from 30 s after Ready)", "RSS, p95", "MiB", "", percentile(rssMiB, 95))
	r.add("Idle footprint (hw and its shims, 120 s from 30 s after Ready)", "RSS without program file pages (RssAnon), median", "MiB", "", percentile(anonMiB, 50))
	r.add("Idle footprint (hw and its shims, 120 s from 30 s after Ready)", "CPU (100 % = one core), median", "%", "", percentile(cpuPct, 50))
	r.add("Idle footprint (hw and its shims, 120 s from 30 s after Ready)", "CPU (100 % = one core), p95", "%", "", percentile(cpuPct, 95))
}

const burstLoad = "50 pods at 20 QPS"

// podLatency creates pods at a rate and records, for each, create call →
// Running seen through a watch. starting is called as each load starts.
// shims counts the node's containerd shims (one per pod): after a load, its
// pods are deleted and the next load waits until their shims are gone, so
// that it does not share the machine with their teardown.
func podLatency(t *testing.T, r *report, client kubernetes.Interface, image string, args []string, shims func() int, starting func(load string)) {
	for _, load := range []struct {
		name     string
		count    int
		interval time.Duration
	}{{burstLoad, 50, 50 * time.Millisecond}, {"30 pods at 1 per second", 30, time.Second}} {
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
		baseline := shims()
		starting(load.name)
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
			left := shims() - baseline
			if err == nil && len(list.Items) == 0 && left <= 0 {
				t.Logf("%s: pods deleted and torn down in %s", load.name, time.Since(begin).Round(time.Second))
				break
			}
			if time.Since(begin) > 5*time.Minute {
				t.Logf("%s: 5 minutes after their deletion, %d pods and %d shims still there; going on", load.name, len(list.Items), left)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// apiLatency runs ConfigMap creates, then gets, with 1 and 10 clients; run
// keeps the names of this run apart from earlier ones. starting is called as
// each round starts.
func apiLatency(t *testing.T, r *report, cfg *rest.Config, run string, starting func(op string, clients int)) {
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
			starting(op, clients)
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
						name := fmt.Sprintf("bench-%s-%d-%d-%d", run, clients, c, i)
						begin := time.Now()
						var err error
						if op == "create" {
							_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": "api"}}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
						} else {
							_, err = cms.Get(ctx, fmt.Sprintf("bench-%s-%d-%d-%d", run, clients, c, i%50), metav1.GetOptions{})
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
func agentJoin(t *testing.T, r *report, netw *network, server *hwNode) {
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
		time.Sleep(30 * time.Second) // the settling time before sampling, not a readiness wait
		cfg, _ := clientcmd.BuildConfigFromFlags("", kubeconfig)
		for run := range benchRuns {
			footprint(t, r, func() []int { return matchingPids(procs) })
			podLatency(t, r, client, image, args, func() int { return countShims(matchingPids(procs)) }, func(string) {})
			apiLatency(t, r, cfg, fmt.Sprint(run), func(string, int) {})
		}
		sh("BENCH_STOP")
	}
}

// countShims counts the containerd shims among pids.
func countShims(pids []int) int {
	n := 0
	for _, pid := range pids {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte("containerd-shim")) {
			n++
		}
	}
	return n
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
