package snapshot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/hw-k8s/hw/pkg/config"
)

// S3 is a bucket (and folder in it) that keeps copies of snapshots, under
// the same names as the local files.
type S3 struct {
	client *minio.Client
	bucket string
	folder string
}

// NewS3 connects to the store cfg describes; it checks the bucket exists.
func NewS3(ctx context.Context, cfg config.EtcdS3) (*S3, error) {
	transport, err := minio.DefaultTransport(!cfg.Insecure)
	if err != nil {
		return nil, err
	}
	if cfg.EndpointCA != "" {
		pem, err := os.ReadFile(cfg.EndpointCA)
		if err != nil {
			return nil, fmt.Errorf("--etcd-s3-endpoint-ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-s3-endpoint-ca %s holds no PEM certificate", cfg.EndpointCA)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    !cfg.Insecure,
		Region:    cfg.Region,
		Transport: transport,
	})
	if err != nil {
		return nil, fmt.Errorf("--etcd-s3-endpoint %s: %w", cfg.Endpoint, err)
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("S3 at %s: %w", cfg.Endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("S3 at %s has no bucket %q (--etcd-s3-bucket)", cfg.Endpoint, cfg.Bucket)
	}
	return &S3{client: client, bucket: cfg.Bucket, folder: strings.Trim(cfg.Folder, "/")}, nil
}

func (s *S3) key(name string) string {
	if s.folder == "" {
		return name
	}
	return s.folder + "/" + name
}

func (s *S3) location(name string) string { return "s3://" + s.bucket + "/" + s.key(name) }

// Upload copies a local snapshot to the store.
func (s *S3) Upload(ctx context.Context, info Info) error {
	_, err := s.client.FPutObject(ctx, s.bucket, s.key(info.Name), info.Path, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("uploading %s to %s: %w", info.Name, s.location(info.Name), err)
	}
	return nil
}

// List returns the snapshots in the store's folder, oldest first.
func (s *S3) List(ctx context.Context) ([]Info, error) {
	prefix := ""
	if s.folder != "" {
		prefix = s.folder + "/"
	}
	var out []Info
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("listing %s: %w", s.location(""), obj.Err)
		}
		name := path.Base(obj.Key)
		taken, ok := takenAt(name)
		if !ok || strings.HasSuffix(obj.Key, "/") {
			continue
		}
		out = append(out, Info{Name: name, Location: s.location(name), Size: obj.Size, Taken: taken})
	}
	sortByTime(out)
	return out, nil
}

// Has reports whether the store holds the snapshot name.
func (s *S3) Has(ctx context.Context, name string) bool {
	_, err := s.client.StatObject(ctx, s.bucket, s.key(name), minio.StatObjectOptions{})
	return err == nil
}

// Delete removes snapshots from the store.
func (s *S3) Delete(ctx context.Context, names ...string) error {
	for _, n := range names {
		if err := s.client.RemoveObject(ctx, s.bucket, s.key(n), minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("deleting %s: %w", s.location(n), err)
		}
	}
	return nil
}

// Prune keeps the newest keep snapshots called name of node in the store.
func (s *S3) Prune(ctx context.Context, name, node string, keep int) ([]string, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, old := range beyondRetention(all, name, node, keep) {
		if err := s.Delete(ctx, old.Name); err != nil {
			return removed, err
		}
		removed = append(removed, old.Name)
	}
	return removed, nil
}

// PruneEverywhere prunes the snapshots called name of node in dir and, when
// store is set, in S3, keeping the newest keep in each; it returns the names
// it removed.
func PruneEverywhere(ctx context.Context, dir string, store *S3, name, node string, keep int) ([]string, error) {
	removed, err := Prune(dir, name, node, keep)
	if err != nil || store == nil {
		return removed, err
	}
	more, err := store.Prune(ctx, name, node, keep)
	return append(removed, more...), err
}

// Download fetches the snapshot name into dir and returns the local file.
func (s *S3) Download(ctx context.Context, name, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	dest := filepath.Join(dir, name)
	if err := s.client.FGetObject(ctx, s.bucket, s.key(name), dest, minio.GetObjectOptions{}); err != nil {
		return "", fmt.Errorf("downloading %s: %w", s.location(name), err)
	}
	return dest, nil
}
