//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// hwCommand runs `hw ARGS...` in the node's network namespace, as a user on
// the node would, and returns its output.
func (h *hwNode) hwCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.netns, h.bin}, args...)...).CombinedOutput()
	return string(out), err
}

// treeSum is a checksum of every file below dir, names and contents.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// clusterReset runs `hw server --cluster-reset ARGS...` and waits for it to
// succeed.
func clusterReset(t *testing.T, node *hwNode, args ...string) {
	t.Helper()
	r := node.server(t, append([]string{"--cluster-reset"}, args...)...)
	select {
	case <-r.exited:
	case <-time.After(3 * time.Minute):
		t.Fatal("hw server --cluster-reset did not exit")
	}
	if r.err != nil {
		t.Fatalf("hw server --cluster-reset %s: %v\n%s", strings.Join(args, " "), r.err, tail(r.logPath, 20))
	}
}

// TestEtcdSnapshots saves, lists, deletes and prunes snapshots of a running
// server, checks scheduled snapshots and their retention, locally and in an
// S3 store on the test network, refuses a truncated snapshot without
// touching the data, and restores a snapshot by name from S3: what was
// deleted after it is back, what was made after it is gone, and the node and
// its pods run.
func TestEtcdSnapshots(t *testing.T) {
	netw := newNetwork(t)
	node := newHWNode(t, netw.addNode(t, "snap"))
	writeWebappImage(t, filepath.Join(node.dataDir, "agent", "images", "webapp.tar"))
	s3 := []string{"--etcd-s3", "--etcd-s3-endpoint", netw.serveS3(t, "backups"), "--etcd-s3-insecure",
		"--etcd-s3-bucket", "backups", "--etcd-s3-folder", "cluster-a", "--etcd-s3-access-key", "e2e", "--etcd-s3-secret-key", "e2e-secret"}
	schedule := append([]string{"--etcd-snapshot-schedule-cron", "* * * * *", "--etcd-snapshot-retention", "2"}, s3...)
	p := node.server(t, schedule...)
	node.waitNodeReady(t, p, 3*time.Minute)
	client := node.client(t)
	ctx := context.Background()
	snapDir := filepath.Join(node.dataDir, "server", "db", "snapshots")
	// snapshotCmd is `hw etcd-snapshot SUB --data-dir D ARGS...`.
	snapshotCmd := func(t *testing.T, sub string, args ...string) (string, error) {
		t.Helper()
		return node.hwCommand(t, append([]string{"etcd-snapshot", sub, "--data-dir", node.dataDir}, args...)...)
	}
	snap := func(t *testing.T, sub string, args ...string) string {
		t.Helper()
		out, err := snapshotCmd(t, sub, args...)
		if err != nil {
			t.Fatalf("hw etcd-snapshot %s %s: %v\n%s", sub, strings.Join(args, " "), err, out)
		}
		return out
	}
	saved := regexp.MustCompile(`Saved snapshot (\S+) `)

	// A pod that must run again after the restore.
	_, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "keeper", Labels: map[string]string{"app": "keeper"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "webapp", Image: webappImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runningPods(t, client, "default", "app=keeper", 1)

	t.Run("save ls delete prune", func(t *testing.T) {
		out := snap(t, "save")
		m := saved.FindStringSubmatch(out)
		if m == nil || !strings.HasPrefix(m[1], "on-demand-snap-") {
			t.Fatalf("save printed %q, want the file on-demand-snap-<time>", out)
		}
		if ls := snap(t, "ls"); !strings.Contains(ls, m[1]) || !strings.Contains(ls, "file://"+filepath.Join(snapDir, m[1])) {
			t.Errorf("ls does not list %s with its location:\n%s", m[1], ls)
		}
		snap(t, "delete", m[1])
		if ls := snap(t, "ls"); strings.Contains(ls, m[1]) {
			t.Errorf("deleted snapshot still listed:\n%s", ls)
		}
		if out, err := snapshotCmd(t, "delete", "no-such-snapshot"); err == nil {
			t.Errorf("deleting an unknown snapshot succeeded: %s", out)
		}
		// File names have a resolution of one second: one save per second.
		var names []string
		for len(names) < 3 {
			out, err := snapshotCmd(t, "save", "--name", "pruned")
			if err != nil {
				if !strings.Contains(out, "exists already") {
					t.Fatalf("save: %v\n%s", err, out)
				}
				time.Sleep(200 * time.Millisecond) // the next second, for a new file name
				continue
			}
			names = append(names, saved.FindStringSubmatch(out)[1])
		}
		out = snap(t, "prune", "--name", "pruned", "--snapshot-retention", "1")
		ls := snap(t, "ls")
		for i, n := range names {
			if listed := strings.Contains(ls, n); listed != (i == 2) {
				t.Errorf("after prune to 1: %s listed=%v\n%s\n%s", n, listed, out, ls)
			}
		}
	})

	t.Run("S3 upload and list", func(t *testing.T) {
		out := snap(t, "save", append([]string{"--name", "to-s3"}, s3...)...)
		m := saved.FindStringSubmatch(out)
		if m == nil || !strings.Contains(out, "Uploaded snapshot "+m[1]+" to S3") {
			t.Fatalf("save with --etcd-s3 printed %q, want it saved and uploaded", out)
		}
		ls := snap(t, "ls", s3...)
		if !strings.Contains(ls, "s3://backups/cluster-a/"+m[1]) || !strings.Contains(ls, "file://"+filepath.Join(snapDir, m[1])) {
			t.Errorf("ls --etcd-s3 does not list %s both locally and in S3:\n%s", m[1], ls)
		}
		snap(t, "delete", append(s3, m[1])...)
		if ls := snap(t, "ls", s3...); strings.Contains(ls, m[1]) {
			t.Errorf("deleted snapshot still listed:\n%s", ls)
		}
	})

	// What the snapshot holds, then changes made after it.
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps("kept").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"colour": "green"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := saved.FindStringSubmatch(snap(t, "save", append([]string{"--name", "before"}, s3...)...))[1]
	if err := client.CoreV1().Namespaces().Delete(ctx, "kept", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "later"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("scheduled, retention 2", func(t *testing.T) {
		// Each minute one is saved and recorded on the Node; three saved, two kept.
		eventually(t, 6*time.Minute, "three scheduled snapshots saved", func(ctx context.Context) error {
			events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=EtcdSnapshotSaved,involvedObject.name=snap"})
			if err != nil {
				return err
			}
			count := 0
			for _, e := range events.Items {
				count += int(max(e.Count, 1))
			}
			if count < 3 {
				return fmt.Errorf("%d EtcdSnapshotSaved events", count)
			}
			return nil
		})
		ls := snap(t, "ls", s3...)
		var local, remote int
		for _, line := range strings.Split(ls, "\n") {
			if strings.HasPrefix(line, "etcd-snapshot-snap-") {
				if strings.Contains(line, "s3://") {
					remote++
				} else {
					local++
				}
			}
		}
		if local != 2 || remote != 2 {
			t.Errorf("%d local and %d S3 scheduled snapshots kept, want 2 of each:\n%s", local, remote, ls)
		}
	})

	if err := p.stop(t, 2*time.Minute); err != nil {
		t.Fatalf("hw did not stop cleanly: %v", err)
	}
	etcdDir := filepath.Join(node.dataDir, "server", "db", "etcd")

	t.Run("truncated or unknown snapshot refused", func(t *testing.T) {
		whole, err := os.ReadFile(filepath.Join(snapDir, before))
		if err != nil {
			t.Fatal(err)
		}
		truncated := filepath.Join(t.TempDir(), "truncated")
		if err := os.WriteFile(truncated, whole[:len(whole)*2/3], 0o600); err != nil {
			t.Fatal(err)
		}
		sum := treeSum(t, filepath.Dir(etcdDir))
		for path, refusal := range map[string]string{truncated: "cannot be restored", "no-such-snapshot": "nor in S3"} {
			r := node.server(t, append([]string{"--cluster-reset", "--cluster-reset-restore-path", path}, s3...)...)
			<-r.exited
			var exit *exec.ExitError
			if !errors.As(r.err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("restore of %s: %v, want exit status 1", path, r.err)
			}
			if log, _ := os.ReadFile(r.logPath); !strings.Contains(string(log), refusal) {
				t.Errorf("restore of %s: no clear refusal (%q) in the log:\n%s", path, refusal, tail(r.logPath, 10))
			}
			if treeSum(t, filepath.Dir(etcdDir)) != sum {
				t.Errorf("a refused restore of %s changed the etcd data", path)
			}
		}
	})

	t.Run("restore by name from S3, then reset without a snapshot", func(t *testing.T) {
		// Only S3 has it now, as after the loss of the machine's disk.
		if err := os.Remove(filepath.Join(snapDir, before)); err != nil {
			t.Fatal(err)
		}
		clusterReset(t, node, append([]string{"--cluster-reset-restore-path", before}, s3...)...)
		moved, _ := filepath.Glob(etcdDir + "-old-*")
		if len(moved) != 1 {
			t.Errorf("the etcd data before the restore is not kept aside: %v", moved)
		}
		p = node.server(t, schedule...)
		node.waitNodeReady(t, p, 3*time.Minute)
		client := node.client(t)
		cm, err := client.CoreV1().ConfigMaps("kept").Get(ctx, "settings", metav1.GetOptions{})
		if err != nil || cm.Data["colour"] != "green" {
			t.Errorf("ConfigMap kept/settings after the restore: %v %v", cm, err)
		}
		if ns, err := client.CoreV1().Namespaces().Get(ctx, "kept", metav1.GetOptions{}); err != nil || ns.Status.Phase != corev1.NamespaceActive {
			t.Errorf("namespace kept after the restore: %v %v", ns, err)
		}
		if _, err := client.CoreV1().Namespaces().Get(ctx, "later", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace later, made after the snapshot, exists after the restore: %v", err)
		}
		runningPods(t, client, "default", "app=keeper", 1)

		// --cluster-reset without a snapshot keeps the data. (In this subtest:
		// the server it started ends with it.)
		if err := p.stop(t, 2*time.Minute); err != nil {
			t.Fatalf("hw did not stop cleanly: %v", err)
		}
		clusterReset(t, node)
		p = node.server(t, schedule...)
		node.waitNodeReady(t, p, 3*time.Minute)
		if _, err := node.client(t).CoreV1().ConfigMaps("kept").Get(ctx, "settings", metav1.GetOptions{}); err != nil {
			t.Errorf("data lost by --cluster-reset: %v", err)
		}
	})
}
