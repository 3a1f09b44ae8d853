package boot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/assets"
	"github.com/hw-k8s/hw/pkg/component/etcd"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/lifecycle"
	"github.com/hw-k8s/hw/pkg/preflight"
	"github.com/hw-k8s/hw/pkg/snapshot"
)

// ClusterReset runs `hw server --cluster-reset`, then returns: the next
// normal start runs the cluster. With --cluster-reset-restore-path it
// restores that snapshot into a fresh single-member etcd (the old data is
// moved aside); without, it makes the existing etcd data a single-member
// cluster of this server, the way back after losing quorum.
func ClusterReset(ctx context.Context, cfg *config.Server) error {
	set, err := assets.Embedded()
	if err != nil {
		return err
	}
	s := newServer(cfg, set, time.Now())
	m := lifecycle.NewManager()
	defer m.Stop(klog.NewContext(context.Background(), klog.FromContext(ctx)))
	return s.resetPlan().Run(ctx, m)
}

// resetPlan is `hw server --cluster-reset`'s plan.
func (s *server) resetPlan() lifecycle.Plan {
	steps := []lifecycle.Step{lifecycle.Phase("not-running", s.checkNotRunning)}
	if s.cfg.ClusterResetRestorePath != "" {
		steps = append(steps, lifecycle.Phase("restore", s.restoreSnapshot))
	} else {
		cfg := s.etcdConfig()
		cfg.ForceNewCluster = true
		cfg.Join, cfg.Rejoin, cfg.AfterReady = nil, nil, nil // a reset makes a cluster of one
		steps = append(steps,
			lifecycle.Phase("etcd-data", s.checkEtcdData),
			lifecycle.Start(etcd.New(cfg)),
			lifecycle.Phase("reset-done", func(ctx context.Context) error {
				klog.FromContext(ctx).Info("Cluster reset: etcd is now a single-member cluster of this server, with its data kept. Start 'hw server' without --cluster-reset to run it.",
					"member", s.cfg.NodeName)
				return nil
			}))
	}
	return lifecycle.Plan{Name: "cluster-reset", Steps: steps}
}

// checkNotRunning refuses to touch etcd's data while hw runs on it.
func (s *server) checkNotRunning(ctx context.Context) error {
	err := preflight.CheckPorts([]preflight.Port{
		{Host: "127.0.0.1", Number: config.EtcdClientPort, Component: "etcd clients"},
		{Host: s.cfg.NodeIP.String(), Number: config.EtcdPeerPort, Component: "etcd peers"},
	})
	if err != nil {
		return fmt.Errorf("--cluster-reset: hw server seems to run on this machine (%v); stop it first", err)
	}
	return nil
}

func (s *server) checkEtcdData(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.paths.Etcd, "member")); err != nil {
		return fmt.Errorf("--cluster-reset: no etcd data in %s to reset (is --data-dir right?)", s.paths.Etcd)
	}
	return nil
}

// restoreSnapshot restores --cluster-reset-restore-path: a file, or the
// name of a snapshot in the snapshot folder.
func (s *server) restoreSnapshot(ctx context.Context) error {
	path, err := s.findSnapshot(ctx, s.cfg.ClusterResetRestorePath)
	if err != nil {
		return err
	}
	moved, err := snapshot.Restore(snapshot.RestoreConfig{
		Snapshot: path, EtcdDir: s.paths.Etcd, Member: s.cfg.NodeName, PeerURL: s.etcdPeerURL(),
	}, time.Now())
	if err != nil {
		return fmt.Errorf("--cluster-reset-restore-path: %w", err)
	}
	log := klog.FromContext(ctx)
	if moved != "" {
		log.Info("The etcd data before the restore is kept", "dir", moved)
	}
	log.Info("Cluster reset: etcd restored from the snapshot as a single-member cluster. Start 'hw server' without --cluster-reset to run it.",
		"snapshot", path)
	return nil
}

// findSnapshot is the local file of the snapshot given: a file, a name in
// the snapshot folder, or a name in S3 (downloaded into the folder).
func (s *server) findSnapshot(ctx context.Context, given string) (string, error) {
	if fileExists(given) {
		return given, nil
	}
	if _, err := os.Stat(given); !errors.Is(err, fs.ErrNotExist) || filepath.Base(given) != given {
		return "", fmt.Errorf("--cluster-reset-restore-path %s: not a snapshot file", given)
	}
	if named := filepath.Join(s.cfg.SnapshotDir(), given); fileExists(named) {
		return named, nil
	}
	where := s.cfg.SnapshotDir()
	if s3cfg := s.cfg.EtcdSnapshots.S3; s3cfg != nil {
		store, err := snapshot.NewS3(ctx, *s3cfg)
		if err != nil {
			return "", err
		}
		if store.Has(ctx, given) {
			path, err := store.Download(ctx, given, s.cfg.SnapshotDir())
			if err == nil {
				klog.FromContext(ctx).Info("Downloaded the snapshot from S3", "name", given, "file", path)
			}
			return path, err
		}
		where += " nor in S3"
	}
	return "", fmt.Errorf("--cluster-reset-restore-path %s: no such file, nor a snapshot of that name in %s (see 'hw etcd-snapshot ls')", given, where)
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
