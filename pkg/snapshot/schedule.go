package snapshot

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/kubeclient"
	"github.com/hw-k8s/hw/pkg/lifecycle"
)

// ScheduleConfig is what scheduled snapshots need.
type ScheduleConfig struct {
	// Cron is a five-field schedule (--etcd-snapshot-schedule-cron).
	Cron      string
	Retention int
	Name      string
	Dir       string
	// Node is this server's node name, the member's name.
	Node string
	// TLSDir and Endpoint find this server's etcd and its client certificate.
	TLSDir   string
	Endpoint string
	// Clients record each snapshot as an Event on the Node.
	Clients *kubeclient.Shared
	// S3, when set, gets a copy of each snapshot; retention applies there too.
	S3 *config.EtcdS3
	// Compress writes snapshots zstd-compressed (NAME-<node>-<time>.zst).
	Compress bool
}

// Schedule takes a snapshot at each time of its schedule, keeps the newest
// Retention scheduled snapshots of this node, and records each result as an
// Event on the Node (EtcdSnapshotSaved, or a Warning EtcdSnapshotFailed). A
// failure is logged and reported, and never stops hw.
type Schedule struct {
	lifecycle.Goroutine
	cfg      ScheduleConfig
	schedule cron.Schedule
}

var _ lifecycle.Component = (*Schedule)(nil)

// NewSchedule returns the component; nothing runs until Start.
func NewSchedule(cfg ScheduleConfig) *Schedule { return &Schedule{cfg: cfg} }

func (s *Schedule) Name() string { return "etcd-snapshots" }

// Init parses the schedule.
func (s *Schedule) Init(ctx context.Context) error {
	schedule, err := cron.ParseStandard(s.cfg.Cron)
	if err != nil {
		return fmt.Errorf("--etcd-snapshot-schedule-cron %q is not a cron schedule (example: \"0 */12 * * *\"): %v", s.cfg.Cron, err)
	}
	if !filepath.IsAbs(s.cfg.Dir) {
		return fmt.Errorf("--etcd-snapshot-dir %q must be an absolute path", s.cfg.Dir)
	}
	s.schedule = schedule
	return nil
}

func (s *Schedule) Start(ctx context.Context) error {
	if s.schedule == nil {
		return fmt.Errorf("started before Init")
	}
	etcd, err := LocalEtcd(s.cfg.TLSDir, s.cfg.Endpoint)
	if err != nil {
		return err
	}
	client, err := s.cfg.Clients.Client()
	if err != nil {
		return err
	}
	s.Go(ctx, func(ctx context.Context) error {
		log := klog.FromContext(ctx).WithName("etcd-snapshots")
		recorder, stopEvents := kubeclient.EventRecorder(ctx, client, corev1.EventSource{Component: "hw-etcd-snapshots", Host: s.cfg.Node})
		defer stopEvents()
		// Node Events refer to the Node by name, as kubelet's do.
		node := &corev1.ObjectReference{Kind: "Node", Name: s.cfg.Node, UID: types.UID(s.cfg.Node)}
		for {
			next := s.schedule.Next(time.Now())
			log.V(1).Info("Next scheduled etcd snapshot", "at", next)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Until(next)):
			}
			info, err := Save(ctx, etcd, s.cfg.Dir, s.cfg.Name, s.cfg.Node, next, s.cfg.Compress)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				log.Error(err, "Scheduled etcd snapshot failed")
				recorder.Eventf(node, corev1.EventTypeWarning, "EtcdSnapshotFailed", "scheduled etcd snapshot failed: %v", err)
				continue
			}
			log.Info("Saved scheduled etcd snapshot", "file", info.Path, "bytes", info.Size)
			recorder.Eventf(node, corev1.EventTypeNormal, "EtcdSnapshotSaved", "saved etcd snapshot %s (%d bytes) to %s", info.Name, info.Size, info.Path)
			var store *S3
			if s.cfg.S3 != nil {
				if store, err = s.upload(ctx, info); err != nil {
					log.Error(err, "Uploading the scheduled etcd snapshot; it is kept locally", "file", info.Path)
					recorder.Eventf(node, corev1.EventTypeWarning, "EtcdSnapshotUploadFailed", "etcd snapshot %s kept at %s, not in S3: %v", info.Name, info.Path, err)
				} else {
					log.Info("Uploaded scheduled etcd snapshot to S3", "name", info.Name)
				}
			}
			removed, err := PruneEverywhere(ctx, s.cfg.Dir, store, s.cfg.Name, s.cfg.Node, s.cfg.Retention)
			if err != nil {
				log.Error(err, "Pruning scheduled etcd snapshots")
			}
			for _, name := range removed {
				log.Info("Removed an old scheduled etcd snapshot", "name", name, "retention", s.cfg.Retention)
			}
		}
	})
	return nil
}

// upload copies info to S3 and returns the store. It connects each time: a
// store that was away at one snapshot may be back at the next.
func (s *Schedule) upload(ctx context.Context, info Info) (*S3, error) {
	store, err := NewS3(ctx, *s.cfg.S3)
	if err != nil {
		return nil, err
	}
	return store, store.Upload(ctx, info)
}

// Ready does not wait: the first snapshot is due at the next scheduled time.
func (s *Schedule) Ready(ctx context.Context) error { return nil }
