package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/hw-k8s/hw/pkg/cli"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/snapshot"
)

// etcdSnapshot runs `hw etcd-snapshot save|ls|delete|prune` against the
// server whose data dir is req.DataDir.
func etcdSnapshot(ctx context.Context, req cli.SnapshotRequest) error {
	paths := config.PathsFor(req.DataDir)
	dir := req.Dir
	if dir == "" {
		dir = paths.Snapshots
	}
	switch req.Op {
	case "ls":
		list, err := snapshot.List(dir)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tSIZE\tCREATED\tLOCATION")
		for _, s := range list {
			fmt.Fprintf(w, "%s\t%d\t%s\tfile://%s\n", s.Name, s.Size, s.Taken.UTC().Format(time.RFC3339), s.Path)
		}
		return w.Flush()
	case "delete":
		if err := snapshot.Delete(dir, req.Names...); err != nil {
			return err
		}
		for _, n := range req.Names {
			fmt.Printf("Deleted snapshot %s\n", n)
		}
		return nil
	}
	etcd, err := snapshot.LocalEtcd(paths.TLS, config.EtcdClientPort)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	node, err := etcd.LocalMember(ctx)
	if err != nil {
		return err
	}
	switch req.Op {
	case "save":
		info, err := snapshot.Save(ctx, etcd, dir, req.Name, node, time.Now())
		if err != nil {
			return err
		}
		fmt.Printf("Saved snapshot %s (%d bytes) to %s\n", info.Name, info.Size, info.Path)
	case "prune":
		removed, err := snapshot.Prune(dir, req.Name, node, req.Retention)
		if err != nil {
			return err
		}
		for _, n := range removed {
			fmt.Printf("Deleted snapshot %s\n", n)
		}
	default:
		return fmt.Errorf("unknown etcd-snapshot command %q", req.Op)
	}
	return nil
}
