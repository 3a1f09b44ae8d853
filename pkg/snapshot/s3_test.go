package snapshot

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/hw-k8s/hw/pkg/config"
)

// fakeS3 serves an in-memory S3 on loopback with one bucket, "backups".
func fakeS3(t *testing.T) config.EtcdS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("backups"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return config.EtcdS3{
		Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "backups", Folder: "/cluster-a/",
		Region: config.DefaultS3Region, AccessKey: "key", SecretKey: "secret", Insecure: true,
	}
}

func TestS3UploadListPruneDownload(t *testing.T) {
	ctx := context.Background()
	cfg := fakeS3(t)
	s3, err := NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := time.Unix(1_700_000_000, 0)
	var names []string
	for i := range 3 {
		name := FileName("etcd-snapshot", "node-a", base.Add(time.Duration(i)*time.Minute))
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("snapshot "+name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s3.Upload(ctx, localInfo(path, 0, base)); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	list, err := s3.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %v, %v; want 3", list, err)
	}
	if list[0].Location != "s3://backups/cluster-a/"+names[0] || list[0].Size == 0 {
		t.Errorf("first listed: %+v", list[0])
	}
	removed, err := s3.Prune(ctx, "etcd-snapshot", "node-a", 2)
	if err != nil || len(removed) != 1 || removed[0] != names[0] {
		t.Errorf("Prune = %v, %v; want %s removed", removed, err, names[0])
	}
	if s3.Has(ctx, names[0]) || !s3.Has(ctx, names[2]) {
		t.Error("Has does not follow the prune")
	}
	got, err := s3.Download(ctx, names[2], t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(got); string(data) != "snapshot "+names[2] {
		t.Errorf("downloaded %q", data)
	}
	if err := s3.Delete(ctx, names[1], names[2]); err != nil {
		t.Fatal(err)
	}
	if list, _ := s3.List(ctx); len(list) != 0 {
		t.Errorf("after delete: %v", list)
	}

	cfg.Bucket = "missing"
	if _, err := NewS3(ctx, cfg); err == nil || !strings.Contains(err.Error(), `no bucket "missing"`) {
		t.Errorf("a missing bucket: %v", err)
	}
}
