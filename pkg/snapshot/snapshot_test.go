package snapshot

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startEtcd runs a one-member etcd on loopback with its data in dir.
func startEtcd(t *testing.T, dir, name string, peerPort int) (Etcd, func()) {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = name, dir
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = name + "=" + peer.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		e.Close()
		t.Fatal("etcd not ready within a minute")
	}
	return Etcd{Endpoint: client.String()}, e.Close
}

func kv(t *testing.T, e Etcd) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSaveListPruneDeleteRestore(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	etcdDir := filepath.Join(root, "db", "etcd")
	peerPort := freePort(t)
	e, stop := startEtcd(t, etcdDir, "node-a", peerPort)
	c := kv(t, e)
	if _, err := c.Put(ctx, "/registry/namespaces/a", "kept"); err != nil {
		t.Fatal(err)
	}
	member, err := e.LocalMember(ctx)
	if err != nil || member != "node-a" {
		t.Fatalf("LocalMember = %q, %v", member, err)
	}

	snaps := filepath.Join(root, "snapshots")
	base := time.Unix(1_700_000_000, 0)
	var saved []Info
	for i := range 3 {
		// The newest compressed: listed, pruned and restored like the others.
		info, err := Save(ctx, e, snaps, "etcd-snapshot", member, base.Add(time.Duration(i)*time.Hour), i == 2)
		if err != nil {
			t.Fatal(err)
		}
		saved = append(saved, info)
	}
	if !strings.HasSuffix(saved[2].Name, CompressedSuffix) || saved[2].Size >= saved[1].Size {
		t.Errorf("compressed snapshot %s of %d bytes, uncompressed %d", saved[2].Name, saved[2].Size, saved[1].Size)
	}
	if _, err := Save(ctx, e, snaps, "on-demand", member, base, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/registry/namespaces/b", "after the snapshot"); err != nil {
		t.Fatal(err)
	}
	list, err := List(snaps)
	if err != nil || len(list) != 4 {
		t.Fatalf("List = %v, %v; want 4 snapshots", list, err)
	}
	if list[0].Size == 0 || !list[3].Taken.Equal(base.Add(2*time.Hour)) {
		t.Errorf("List not oldest first with sizes: %+v", list)
	}

	removed, err := Prune(snaps, "etcd-snapshot", member, 2)
	if err != nil || len(removed) != 1 || removed[0] != saved[0].Name {
		t.Errorf("Prune = %v, %v; want the oldest scheduled snapshot removed", removed, err)
	}
	if err := Delete(snaps, "on-demand-node-a-1700000000", "no-such-snapshot"); err == nil {
		t.Error("Delete of an unknown name succeeded")
	}
	if list, _ := List(snaps); len(list) != 3 {
		t.Errorf("a failed Delete removed something: %v", list)
	}
	if err := Delete(snaps, "on-demand-node-a-1700000000"); err != nil {
		t.Error(err)
	}
	if list, _ := List(snaps); len(list) != 2 {
		t.Errorf("after prune and delete: %v, want 2", list)
	}
	stop()

	// A truncated copy is refused and the data dir is left alone.
	whole, err := os.ReadFile(saved[2].Path)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(root, "truncated")
	if err := os.WriteFile(truncated, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := RestoreConfig{EtcdDir: etcdDir, Member: member, PeerURL: fmt.Sprintf("http://127.0.0.1:%d", peerPort)}
	cfg.Snapshot = truncated
	if _, err := Restore(cfg, time.Now()); err == nil || !strings.Contains(err.Error(), "cannot be restored") {
		t.Errorf("restore of a truncated snapshot: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(etcdDir)); len(entries) != 1 {
		t.Errorf("a refused restore left %d entries beside the data dir, want only etcd", len(entries))
	}

	cfg.Snapshot = saved[2].Path
	now := time.Now()
	moved, err := Restore(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(moved, "member")); err != nil {
		t.Errorf("old data not kept at %s: %v", moved, err)
	}
	// A second restore in the same second keeps both earlier data dirs.
	again, err := Restore(cfg, now)
	if err != nil || again == moved {
		t.Fatalf("second restore in the same second: moved to %q (first %q), %v", again, moved, err)
	}
	e, stop = startEtcd(t, etcdDir, member, peerPort)
	defer stop()
	c = kv(t, e)
	got, err := c.Get(ctx, "/registry/namespaces/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 1 || string(got.Kvs[0].Key) != "/registry/namespaces/a" {
		t.Errorf("restored keys: %v; want only what the snapshot held", got.Kvs)
	}
	if got.Header.Revision < revisionBump {
		t.Errorf("revision %d: restore must move it past what watchers saw", got.Header.Revision)
	}
}
