package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// revisionBump raises the restored etcd's revision past anything clients saw
// before, and the revisions in between are marked compacted: watchers (the
// apiserver's caches, every informer) then list afresh instead of waiting
// for revisions that will never come, as etcd's restore guide advises for
// Kubernetes.
const revisionBump = 1_000_000_000

// RestoreConfig is what Restore needs.
type RestoreConfig struct {
	// Snapshot is the file to restore.
	Snapshot string
	// EtcdDir is the member's data dir, <data-dir>/server/db/etcd.
	EtcdDir string
	// Member and PeerURL make the single member of the restored cluster.
	Member, PeerURL string
}

// Restore checks the snapshot's integrity and makes from it a fresh
// single-member etcd in EtcdDir. An existing EtcdDir is moved aside, never
// deleted; its new name is returned. On any error EtcdDir is as it was.
func Restore(cfg RestoreConfig, now time.Time) (moved string, err error) {
	st, err := os.Stat(cfg.Snapshot)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", cfg.Snapshot, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("snapshot %s is not a file", cfg.Snapshot)
	}
	parent := filepath.Dir(cfg.EtcdDir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	// Restore beside the data dir, then swap: a snapshot that fails its
	// check leaves nothing behind.
	staging, err := os.MkdirTemp(parent, filepath.Base(cfg.EtcdDir)+"-restoring-")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(staging)
		}
	}()
	target := filepath.Join(staging, "etcd")
	snapshotPath := cfg.Snapshot
	if strings.HasSuffix(snapshotPath, CompressedSuffix) {
		snapshotPath = filepath.Join(staging, "snapshot.db")
		if err := decompressFile(cfg.Snapshot, snapshotPath); err != nil {
			return "", fmt.Errorf("snapshot %s cannot be restored: %w", cfg.Snapshot, err)
		}
	}
	if err := etcdutl.NewV3(zap.NewNop()).Restore(etcdutl.RestoreConfig{
		SnapshotPath:   snapshotPath,
		Name:           cfg.Member,
		OutputDataDir:  target,
		PeerURLs:       []string{cfg.PeerURL},
		InitialCluster: cfg.Member + "=" + cfg.PeerURL,
		// etcd's default, which hw's etcd runs with.
		InitialClusterToken: "etcd-cluster",
		RevisionBump:        revisionBump,
		MarkCompacted:       true,
	}); err != nil {
		return "", fmt.Errorf("snapshot %s cannot be restored (truncated, corrupt, or not an etcd snapshot?): %w", cfg.Snapshot, err)
	}
	if _, err := os.Stat(cfg.EtcdDir); err == nil {
		moved = asideName(cfg.EtcdDir, now)
		if err := os.Rename(cfg.EtcdDir, moved); err != nil {
			return "", fmt.Errorf("moving the current etcd data aside: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.Rename(target, cfg.EtcdDir); err != nil {
		if moved != "" {
			os.Rename(moved, cfg.EtcdDir) // put the old data back
		}
		return "", fmt.Errorf("putting the restored etcd data in place: %w", err)
	}
	return moved, os.RemoveAll(staging)
}

// MoveAside renames the etcd data dir to a free etcd-old-<unix time> name
// beside it (never deleting it) and returns that name.
func MoveAside(dir string, now time.Time) (string, error) {
	moved := asideName(dir, now)
	if err := os.Rename(dir, moved); err != nil {
		return "", fmt.Errorf("moving %s aside: %w", dir, err)
	}
	return moved, nil
}

// asideName is a free name for the data dir being replaced: etcd-old-<unix
// time>, with a counter when two restores fall in the same second.
func asideName(dir string, now time.Time) string {
	name := fmt.Sprintf("%s-old-%d", dir, now.Unix())
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s-old-%d-%d", dir, now.Unix(), i)
	}
}
