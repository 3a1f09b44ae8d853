//go:build e2e

package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadArgumentsRefusedBeforeStart gives `hw server` one bad passthrough
// argument per component: each run must exit non-zero within seconds with
// one line naming the argument, before etcd has written anything and with
// nothing left listening. Then a normal start on the same data dir reaches
// node Ready.
func TestBadArgumentsRefusedBeforeStart(t *testing.T) {
	netw := newNetwork(t)
	node := newHWNode(t, netw.addNode(t, "badargs"))
	wal := filepath.Join(node.dataDir, "server", "db", "etcd", "member", "wal")

	for _, tc := range []struct{ flag, arg string }{
		{"--kubelet-arg", "max-pods=banana"},
		{"--kube-apiserver-arg", "no-such-flag=1"},
		{"--kube-controller-manager-arg", "bogus-setting=2"},
		{"--kube-scheduler-arg", "no-such=3"},
		{"--kube-proxy-arg", "proxy-mode=carrier-pigeon"},
		{"--etcd-arg", "bogus=1"},
	} {
		t.Run(strings.TrimPrefix(tc.flag, "--"), func(t *testing.T) {
			p := node.server(t, tc.flag, tc.arg)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("hw server %s %s still runs after 30 s; it should refuse the argument at once", tc.flag, tc.arg)
			}
			var exit *exec.ExitError
			if !errors.As(p.err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want exit status 1", p.err)
			}
			log, err := os.ReadFile(p.logPath)
			if err != nil {
				t.Fatal(err)
			}
			var errLines []string
			for _, line := range strings.Split(string(log), "\n") {
				if strings.HasPrefix(line, "hw: ") {
					errLines = append(errLines, line)
				}
			}
			value := tc.arg[strings.Index(tc.arg, "=")+1:]
			if len(errLines) != 1 || !strings.Contains(errLines[0], tc.flag) || !strings.Contains(errLines[0], value) {
				t.Errorf("want one error line naming %s and %q, got %q", tc.flag, value, errLines)
			}
			if _, err := os.Stat(wal); err == nil {
				t.Errorf("etcd wrote its WAL (%s) although the configuration was refused", wal)
			}
			for _, port := range []string{"2379", "6443", "10250"} {
				if conn, err := node.dial(t.Context(), "tcp", "127.0.0.1:"+port); err == nil {
					conn.Close()
					t.Errorf("something still listens on port %s after hw exited", port)
				}
			}
		})
	}

	p := node.server(t)
	node.waitNodeReady(t, p, 3*time.Minute)
}
