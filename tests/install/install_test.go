// Package install tests install.sh as a user runs it, into a scratch root:
// its bin, service, OpenRC and config dirs point at temporary folders, and
// the release it downloads is served from a loopback HTTP server. The
// scripts it writes (hw-killall.sh, hw-uninstall.sh) are exercised against a
// real hw by the e2e tests (tests/e2e/install_test.go).
package install

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// scratch is one machine's worth of install targets.
type scratch struct {
	root, bin, systemd, openrc, config, tools string
}

func newScratch(t *testing.T) *scratch {
	root := t.TempDir()
	s := &scratch{
		root:    root,
		bin:     filepath.Join(root, "usr-local-bin"),
		systemd: filepath.Join(root, "etc-systemd-system"),
		openrc:  filepath.Join(root, "etc-init.d"),
		config:  filepath.Join(root, "etc-hw"),
		tools:   filepath.Join(root, "tools"),
	}
	if err := os.MkdirAll(s.tools, 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

// path is the PATH install.sh runs with: the scratch tools first (fake
// service managers, when a test adds them), then the scratch bin dir, then
// the system's.
func (s *scratch) path() string {
	return strings.Join([]string{s.tools, s.bin, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}, ":")
}

// install runs install.sh with a clean environment: only PATH, the scratch
// dirs and the given variables, so no HW_* of the machine running the test
// leaks in.
func (s *scratch) install(t *testing.T, vars ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", installScript(t))
	cmd.Env = append([]string{
		"PATH=" + s.path(),
		"HOME=" + s.root,
		"INSTALL_HW_BIN_DIR=" + s.bin,
		"INSTALL_HW_SYSTEMD_DIR=" + s.systemd,
		"INSTALL_HW_OPENRC_DIR=" + s.openrc,
		"INSTALL_HW_CONFIG_DIR=" + s.config,
	}, vars...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *scratch) mustInstall(t *testing.T, vars ...string) string {
	t.Helper()
	out, err := s.install(t, vars...)
	if err != nil {
		t.Fatalf("install.sh %v: %v\n%s", vars, err, out)
	}
	return out
}

// files lists every file below the scratch root except the fake tools, as
// paths relative to it.
func (s *scratch) files(t *testing.T) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(s.root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if path == s.tools {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(s.root, path)
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// fakeTool puts an executable named name first on install.sh's PATH that
// appends its arguments to calls.log: the service managers this machine does
// not run (systemctl, rc-service), or a command that should stop a link.
func (s *scratch) fakeTool(t *testing.T, name string) {
	t.Helper()
	script := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >>%s/calls.log\n", name, s.tools)
	if err := os.WriteFile(filepath.Join(s.tools, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// calls returns the fake tools' calls since the last time it was asked.
func (s *scratch) calls(t *testing.T) []string {
	t.Helper()
	log := filepath.Join(s.tools, "calls.log")
	data, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(log)
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func installScript(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs("../../install.sh")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func releaseArch(t *testing.T) string {
	switch runtime.GOARCH {
	case "amd64", "arm64", "arm":
		return runtime.GOARCH
	}
	t.Skipf("install.sh has no release for %s", runtime.GOARCH)
	return ""
}

// releases serves hw releases in GitHub's layout on loopback:
// /download/<version>/hw-<arch> and /latest/download/hw-<arch>, each with a
// .sha256 beside it.
type releases struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func newReleases(t *testing.T) *releases {
	r := &releases{files: map[string][]byte{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		data, ok := r.files[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(r.Close)
	return r
}

// publish makes binary the release at dir ("latest/download" or
// "download/v1.2.3"); sum overrides its .sha256 file when not empty.
func (r *releases) publish(t *testing.T, dir string, binary []byte, sum string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := "/" + dir + "/hw-" + releaseArch(t)
	if sum == "" {
		h := sha256.Sum256(binary)
		sum = hex.EncodeToString(h[:])
	}
	r.files[name] = binary
	r.files[name+".sha256"] = []byte(sum + "  hw-" + releaseArch(t) + "\n")
}

// fakeBinary stands for a release of hw: the installer copies and checks it
// but never runs it, so any bytes do.
func fakeBinary(version string) []byte {
	return []byte("#!/bin/sh\necho hw " + version + "\n")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", path, got, want)
	}
}

func assertContains(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, text)
		}
	}
}

// assertLinks checks kubectl, crictl and ctr: linked to hw unless the
// command exists elsewhere on the installer's PATH.
func assertLinks(t *testing.T, s *scratch) {
	t.Helper()
	for _, tool := range []string{"kubectl", "crictl", "ctr"} {
		link := filepath.Join(s.bin, tool)
		target, err := os.Readlink(link)
		existing := ""
		for _, dir := range filepath.SplitList(s.path()) {
			if dir == s.bin {
				continue
			}
			if st, err := os.Stat(filepath.Join(dir, tool)); err == nil && st.Mode()&0o111 != 0 {
				existing = filepath.Join(dir, tool)
				break
			}
		}
		switch {
		case existing == "" && (err != nil || target != "hw"):
			t.Errorf("%s: want a link to hw (no %s on PATH), got %q %v", link, tool, target, err)
		case existing != "" && err == nil:
			t.Errorf("%s links to %s although %s exists", link, target, existing)
		}
	}
}

func TestServerWithSystemd(t *testing.T) {
	s := newScratch(t)
	rel := newReleases(t)
	binary := fakeBinary("v1.0.0")
	rel.publish(t, "latest/download", binary, "")
	s.fakeTool(t, "systemctl")

	out := s.mustInstall(t, "INSTALL_HW_DOWNLOAD_URL="+rel.URL, "INSTALL_HW_INIT=systemd",
		"INSTALL_HW_EXEC=--tls-san hw.example --debug", "HW_TOKEN=s3cret", "HW_NODE_NAME=edge-1")

	if got := readFile(t, filepath.Join(s.bin, "hw")); got != string(binary) {
		t.Errorf("installed hw is %q, want the release %q", got, binary)
	}
	assertMode(t, filepath.Join(s.bin, "hw"), 0o755)
	assertMode(t, filepath.Join(s.bin, "hw-killall.sh"), 0o755)
	assertMode(t, filepath.Join(s.bin, "hw-uninstall.sh"), 0o755)
	if _, err := os.Stat(filepath.Join(s.bin, "hw-agent-uninstall.sh")); err == nil {
		t.Error("a server install wrote hw-agent-uninstall.sh")
	}

	env := filepath.Join(s.config, "hw.env")
	assertMode(t, env, 0o600)
	if got, want := readFile(t, env), "HW_NODE_NAME='edge-1'\nHW_TOKEN='s3cret'\n"; got != want {
		t.Errorf("%s is %q, want %q", env, got, want)
	}

	unit := filepath.Join(s.systemd, "hw.service")
	assertMode(t, unit, 0o644)
	text := readFile(t, unit)
	assertContains(t, unit, text,
		"Type=notify\n", "NotifyAccess=main\n", "KillMode=process\n", "Delegate=yes\n",
		"LimitNOFILE=1048576\n", "Restart=always\n", "TimeoutStartSec=0\n",
		"EnvironmentFile=-"+env+"\n",
		"ExecStart="+s.bin+"/hw server --tls-san hw.example --debug\n",
		"WantedBy=multi-user.target\n")
	assertLinks(t, s)
	verifyUnit(t, unit)

	// Without systemd running, the installer leaves the service to the user;
	// with it, the fake systemctl (first on PATH) takes the calls.
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		assertContains(t, "install.sh output", out, "systemd is not running here", "systemctl enable --now hw")
		if calls := s.calls(t); len(calls) != 0 {
			t.Errorf("systemctl called without systemd running: %q", calls)
		}
	} else if calls := s.calls(t); !slices.Equal(calls, []string{"systemctl daemon-reload", "systemctl enable hw", "systemctl restart hw"}) {
		t.Errorf("systemctl calls: %q", calls)
	}
	assertContains(t, "install.sh output", out, "remove hw with "+s.bin+"/hw-uninstall.sh")
}

// verifyUnit runs systemd-analyze verify on the unit (hw's path exists, so
// the check of ExecStart passes). .ci/run installs systemd-analyze.
func verifyUnit(t *testing.T, unit string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed, so the unit cannot be verified: apt-get install -y systemd (.ci/run installs it)")
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
	// Without a running systemd, verify still parses the unit; any line
	// naming our unit is a problem with it.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, filepath.Base(unit)) {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

func TestAgentWithOpenRC(t *testing.T) {
	s := newScratch(t)
	if err := os.MkdirAll(s.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.bin, "hw"), fakeBinary("local"), 0o755); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(s.root, "token")
	if err := os.WriteFile(token, []byte("K10abc::server:xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.fakeTool(t, "rc-service")
	s.fakeTool(t, "rc-update")
	s.fakeTool(t, "ctr") // an existing ctr is not shadowed by a link
	vars := []string{"INSTALL_HW_SKIP_DOWNLOAD=true", "INSTALL_HW_INIT=openrc",
		"HW_URL=https://10.0.0.1:6443", "HW_TOKEN_FILE=" + token}

	out := s.mustInstall(t, vars...)
	assertContains(t, "install.sh output", out, "installing hw agent as 'hw-agent'", "using "+s.bin+"/hw as it is")
	if got := readFile(t, filepath.Join(s.bin, "hw")); got != string(fakeBinary("local")) {
		t.Errorf("INSTALL_HW_SKIP_DOWNLOAD replaced hw: %q", got)
	}
	script := filepath.Join(s.openrc, "hw-agent")
	assertMode(t, script, 0o755)
	text := readFile(t, script)
	assertContains(t, script, text, "#!/sbin/openrc-run\n", "supervisor=supervise-daemon\n",
		`command="`+s.bin+`/hw"`, `command_args="agent"`, `. "`+s.config+`/hw-agent.env"`)
	env := filepath.Join(s.config, "hw-agent.env")
	assertMode(t, env, 0o600)
	if got, want := readFile(t, env), "HW_TOKEN_FILE='"+token+"'\nHW_URL='https://10.0.0.1:6443'\n"; got != want {
		t.Errorf("%s is %q, want %q", env, got, want)
	}
	assertMode(t, filepath.Join(s.bin, "hw-agent-uninstall.sh"), 0o755)
	if _, err := os.Stat(filepath.Join(s.bin, "hw-uninstall.sh")); err == nil {
		t.Error("an agent install wrote hw-uninstall.sh")
	}
	assertLinks(t, s)
	if _, err := os.Lstat(filepath.Join(s.bin, "ctr")); err == nil {
		t.Error("ctr linked to hw although a ctr exists on PATH")
	}
	if calls := s.calls(t); !slices.Equal(calls, []string{"rc-update add hw-agent default", "rc-service hw-agent restart"}) {
		t.Errorf("first install: OpenRC calls %q, want enable and restart", calls)
	}

	// Same settings: nothing written, the service only started.
	out = s.mustInstall(t, vars...)
	assertContains(t, "second install.sh output", out, "nothing changed")
	if strings.Contains(out, "wrote") {
		t.Errorf("second run wrote files:\n%s", out)
	}
	if calls := s.calls(t); !slices.Equal(calls, []string{"rc-update add hw-agent default", "rc-service hw-agent start"}) {
		t.Errorf("unchanged install: OpenRC calls %q, want a start, not a restart", calls)
	}

	// A changed environment restarts it; SKIP_ENABLE leaves the runlevel be.
	out = s.mustInstall(t, append(vars, "HW_NODE_NAME=edge-2", "INSTALL_HW_SKIP_ENABLE=true")...)
	assertContains(t, "third install.sh output", out, "wrote "+env)
	if calls := s.calls(t); !slices.Equal(calls, []string{"rc-service hw-agent restart"}) {
		t.Errorf("changed env: OpenRC calls %q, want only a restart", calls)
	}

	// SKIP_START: nothing started.
	out = s.mustInstall(t, append(vars, "HW_NODE_NAME=edge-3", "INSTALL_HW_SKIP_START=true")...)
	assertContains(t, "fourth install.sh output", out, "not starting hw-agent")
	if calls := s.calls(t); !slices.Equal(calls, []string{"rc-update add hw-agent default"}) {
		t.Errorf("INSTALL_HW_SKIP_START: OpenRC calls %q, want only enable", calls)
	}
}

func TestNoInitAndSecondRun(t *testing.T) {
	s := newScratch(t)
	rel := newReleases(t)
	rel.publish(t, "download/v1.2.3", fakeBinary("v1.2.3"), "")
	rel.publish(t, "latest/download", fakeBinary("v9"), "")
	vars := []string{"INSTALL_HW_DOWNLOAD_URL=" + rel.URL + "/", "INSTALL_HW_VERSION=v1.2.3", "INSTALL_HW_INIT=none",
		"INSTALL_HW_NAME=edge", "INSTALL_HW_EXEC=server --debug"}

	out := s.mustInstall(t, vars...)
	if got := readFile(t, filepath.Join(s.bin, "hw")); got != string(fakeBinary("v1.2.3")) {
		t.Errorf("INSTALL_HW_VERSION=v1.2.3 installed %q", got)
	}
	assertContains(t, "install.sh output", out, "no service (INSTALL_HW_INIT=none)",
		s.bin+"/hw server --debug")
	want := []string{
		"etc-hw/edge.env",
		"usr-local-bin/hw", "usr-local-bin/hw-killall.sh", "usr-local-bin/hw-uninstall.sh",
	}
	got := slices.DeleteFunc(s.files(t), func(f string) bool {
		return f == "usr-local-bin/kubectl" || f == "usr-local-bin/crictl" || f == "usr-local-bin/ctr"
	})
	if !slices.Equal(got, want) {
		t.Errorf("files written: %q, want %q", got, want)
	}
	assertLinks(t, s)

	before := modTimes(t, s)
	time.Sleep(10 * time.Millisecond) // so a rewrite would show in the mtimes
	out = s.mustInstall(t, vars...)
	assertContains(t, "second install.sh output", out, "nothing changed", "is already this release")
	if strings.Contains(out, "wrote") || strings.Contains(out, "installed") || strings.Contains(out, "linked") {
		t.Errorf("second run changed something:\n%s", out)
	}
	if after := modTimes(t, s); !mapsEqual(before, after) {
		t.Errorf("second run touched files: before %v, after %v", before, after)
	}

	// A new release is installed over the old one.
	rel.publish(t, "download/v1.2.3", fakeBinary("v1.2.3-rebuilt"), "")
	out = s.mustInstall(t, vars...)
	assertContains(t, "install.sh output for a changed release", out, "installed "+s.bin+"/hw")
	if strings.Contains(out, "nothing changed") {
		t.Errorf("a new binary was reported as no change:\n%s", out)
	}
}

func modTimes(t *testing.T, s *scratch) map[string]time.Time {
	out := map[string]time.Time{}
	for _, f := range s.files(t) {
		st, err := os.Lstat(filepath.Join(s.root, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = st.ModTime()
	}
	return out
}

func mapsEqual(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !b[k].Equal(v) {
			return false
		}
	}
	return true
}

func TestRefusals(t *testing.T) {
	rel := newReleases(t)
	rel.publish(t, "latest/download", fakeBinary("v1"), strings.Repeat("0", 64))
	cases := []struct {
		name string
		vars []string
		want string
	}{
		{"agent without token", []string{"HW_URL=https://10.0.0.1:6443"},
			"an agent needs HW_TOKEN"},
		{"plain http server URL", []string{"HW_URL=http://10.0.0.1:6443", "HW_TOKEN=t"},
			"HW_URL=http://10.0.0.1:6443 is plain http"},
		{"server URL not a URL", []string{"HW_URL=10.0.0.1:6443", "HW_TOKEN=t"},
			"is not an https:// URL"},
		{"agent named explicitly without a server", []string{"INSTALL_HW_EXEC=agent", "HW_TOKEN=t"},
			"an agent needs HW_URL"},
		{"unreadable token file", []string{"HW_URL=https://10.0.0.1:6443", "HW_TOKEN_FILE=/nonexistent/token"},
			"HW_TOKEN_FILE=/nonexistent/token cannot be read"},
		{"unknown init", []string{"INSTALL_HW_INIT=runit"},
			"INSTALL_HW_INIT=runit: want systemd, openrc or none"},
		{"bad name", []string{"INSTALL_HW_NAME=hw/../x"},
			"INSTALL_HW_NAME=hw/../x: use letters"},
		{"skip download without hw", []string{"INSTALL_HW_SKIP_DOWNLOAD=true"},
			"INSTALL_HW_SKIP_DOWNLOAD=true but there is no executable"},
		{"checksum mismatch", []string{"INSTALL_HW_DOWNLOAD_URL=" + rel.URL},
			"but hw-" + releaseArch(t) + ".sha256 says 0000"},
		{"missing release", []string{"INSTALL_HW_DOWNLOAD_URL=" + rel.URL, "INSTALL_HW_VERSION=v0.0.404"},
			"downloading " + rel.URL + "/download/v0.0.404/hw-" + releaseArch(t) + ".sha256 failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScratch(t)
			vars := tc.vars
			if !slices.ContainsFunc(vars, func(v string) bool { return strings.HasPrefix(v, "INSTALL_HW_INIT=") }) {
				vars = append(vars, "INSTALL_HW_INIT=none")
			}
			out, err := s.install(t, vars...)
			if err == nil {
				t.Fatalf("install.sh succeeded, want a refusal:\n%s", out)
			}
			if !strings.Contains(out, "[ERROR] ") || !strings.Contains(out, tc.want) {
				t.Errorf("output lacks an [ERROR] line with %q:\n%s", tc.want, out)
			}
			if files := s.files(t); len(files) != 0 {
				t.Errorf("a refused install left files: %q", files)
			}
		})
	}
}

// TestShellcheck holds install.sh and every script it writes to
// shellcheck's POSIX sh rules.
func TestShellcheck(t *testing.T) {
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck is not installed: apt-get install -y shellcheck (.ci/run installs it)")
	}
	s := newScratch(t)
	if err := os.MkdirAll(s.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.bin, "hw"), fakeBinary("local"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.mustInstall(t, "INSTALL_HW_SKIP_DOWNLOAD=true", "INSTALL_HW_INIT=openrc")
	s.mustInstall(t, "INSTALL_HW_SKIP_DOWNLOAD=true", "INSTALL_HW_INIT=none", "HW_URL=https://10.0.0.1:6443", "HW_TOKEN=t")
	scripts := []string{
		installScript(t),
		filepath.Join(s.bin, "hw-killall.sh"),
		filepath.Join(s.bin, "hw-uninstall.sh"),
		filepath.Join(s.bin, "hw-agent-uninstall.sh"),
		filepath.Join(s.openrc, "hw"),
	}
	for _, script := range scripts {
		if out, err := exec.Command(shellcheck, "-s", "sh", script).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", script, err, out)
		}
		if out, err := exec.Command("sh", "-n", script).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", script, err, out)
		}
	}
}
