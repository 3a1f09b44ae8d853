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
// server whose data dir is req.DataDir, and its S3 store with --etcd-s3.
func etcdSnapshot(ctx context.Context, req cli.SnapshotRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	paths := config.PathsFor(req.DataDir)
	dir := req.Dir
	if dir == "" {
		dir = paths.Snapshots
	}
	var s3 *snapshot.S3
	if req.S3 != nil {
		var err error
		if s3, err = snapshot.NewS3(ctx, *req.S3); err != nil {
			return err
		}
	}
	switch req.Op {
	case "ls":
		return listSnapshots(ctx, dir, s3)
	case "delete":
		return deleteSnapshots(ctx, dir, s3, req.Names)
	}
	etcd, err := snapshot.LocalEtcd(paths.TLS, config.EtcdClientURL())
	if err != nil {
		return err
	}
	node, err := etcd.LocalMember(ctx)
	if err != nil {
		return err
	}
	switch req.Op {
	case "save":
		info, err := snapshot.Save(ctx, etcd, dir, req.Name, node, time.Now(), req.Compress)
		if err != nil {
			return err
		}
		fmt.Printf("Saved snapshot %s (%d bytes) to %s\n", info.Name, info.Size, info.Path)
		if s3 != nil {
			if err := s3.Upload(ctx, info); err != nil {
				return fmt.Errorf("%w; the snapshot is kept at %s", err, info.Path)
			}
			fmt.Printf("Uploaded snapshot %s to S3\n", info.Name)
		}
	case "prune":
		removed, err := snapshot.PruneEverywhere(ctx, dir, s3, req.Name, node, req.Retention)
		for _, n := range removed {
			fmt.Printf("Deleted snapshot %s\n", n)
		}
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown etcd-snapshot command %q", req.Op)
	}
	return nil
}

func listSnapshots(ctx context.Context, dir string, s3 *snapshot.S3) error {
	list, err := snapshot.List(dir)
	if err != nil {
		return err
	}
	if s3 != nil {
		remote, err := s3.List(ctx)
		if err != nil {
			return err
		}
		list = append(list, remote...)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSIZE\tCREATED\tLOCATION")
	for _, s := range list {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", s.Name, s.Size, s.Taken.UTC().Format(time.RFC3339), s.Location)
	}
	return w.Flush()
}

// deleteSnapshots deletes each name wherever it is, locally and in S3; a
// name that is in neither is an error, and nothing is deleted.
func deleteSnapshots(ctx context.Context, dir string, s3 *snapshot.S3, names []string) error {
	local, err := snapshot.List(dir)
	if err != nil {
		return err
	}
	here := map[string]bool{}
	for _, s := range local {
		here[s.Name] = true
	}
	var localNames, remoteNames []string
	for _, n := range names {
		inS3 := s3 != nil && s3.Has(ctx, n)
		if !here[n] && !inS3 {
			where := dir
			if s3 != nil {
				where += " nor in S3"
			}
			return fmt.Errorf("no snapshot %q in %s (see 'hw etcd-snapshot ls')", n, where)
		}
		if here[n] {
			localNames = append(localNames, n)
		}
		if inS3 {
			remoteNames = append(remoteNames, n)
		}
	}
	if err := snapshot.Delete(dir, localNames...); err != nil {
		return err
	}
	if s3 != nil {
		if err := s3.Delete(ctx, remoteNames...); err != nil {
			return err
		}
	}
	for _, n := range names {
		fmt.Printf("Deleted snapshot %s\n", n)
	}
	return nil
}
