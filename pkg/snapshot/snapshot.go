// Package snapshot saves, lists, prunes and restores etcd snapshots: files
// named <name>-<node>-<unix time> in one folder, each an etcd backend with
// etcd's sha256 appended, so a truncated or altered file is refused.
package snapshot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	etcdsnapshot "go.etcd.io/etcd/client/v3/snapshot"
	"go.uber.org/zap"

	"github.com/hw-k8s/hw/pkg/pki"
)

// compressFile writes src, zstd-compressed, to dst, which appears only once
// complete and synced.
func compressFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	part := dst + ".part"
	out, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(part)
		}
	}()
	enc, err := zstd.NewWriter(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, in); err != nil {
		enc.Close()
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(part, dst)
}

// decompressFile writes the zstd file src, decompressed, to dst.
func decompressFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	dec, err := zstd.NewReader(in)
	if err != nil {
		return err
	}
	defer dec.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, dec); err != nil {
		out.Close()
		return fmt.Errorf("%s is not a whole zstd file: %w", src, err)
	}
	return out.Close()
}

// Info is one snapshot file.
type Info struct {
	// Name is the file's name: <name>-<node>-<unix time>.
	Name string
	// Path is the local file; empty for a snapshot only in S3.
	Path string
	// Location is where the snapshot is, as a URL: file:///… or s3://….
	Location string
	Size     int64
	Taken    time.Time
}

// CompressedSuffix ends the name of a compressed snapshot: zstd, which
// shrinks etcd's mostly empty pages several times over, and, unlike zip,
// streams and checks each frame.
const CompressedSuffix = ".zst"

// FileName is the file a snapshot called name, of node, taken at t, goes to.
func FileName(name, node string, t time.Time) string {
	return fmt.Sprintf("%s-%s-%d", name, node, t.Unix())
}

// takenAt reads the time from a snapshot's file name.
func takenAt(file string) (time.Time, bool) {
	file = strings.TrimSuffix(file, CompressedSuffix)
	i := strings.LastIndex(file, "-")
	if i < 0 {
		return time.Time{}, false
	}
	unix, err := strconv.ParseInt(file[i+1:], 10, 64)
	if err != nil || unix <= 0 {
		return time.Time{}, false
	}
	return time.Unix(unix, 0), true
}

// Etcd is how to reach this server's etcd member: one endpoint (a snapshot
// is one member's state) and the client TLS configuration.
type Etcd struct {
	Endpoint string
	TLS      *tls.Config
}

func (e Etcd) config() clientv3.Config {
	return clientv3.Config{Endpoints: []string{e.Endpoint}, TLS: e.TLS, DialTimeout: 10 * time.Second}
}

// LocalMember is the name of the member at e: snapshots carry the node's name.
func (e Etcd) LocalMember(ctx context.Context) (string, error) {
	cfg := e.config()
	cfg.Logger = zap.NewNop()
	client, err := clientv3.New(cfg)
	if err != nil {
		return "", err
	}
	defer client.Close()
	status, err := client.Status(ctx, e.Endpoint)
	if err != nil {
		return "", fmt.Errorf("etcd at %s does not answer (is hw server running?): %w", e.Endpoint, err)
	}
	members, err := client.MemberList(ctx)
	if err != nil {
		return "", err
	}
	for _, m := range members.Members {
		if m.ID == status.Header.MemberId {
			return m.Name, nil
		}
	}
	return "", fmt.Errorf("etcd at %s is not in its own member list", e.Endpoint)
}

// Save writes a snapshot of e to dir, as name-node-<now>. The file appears
// only once complete and synced.
func Save(ctx context.Context, e Etcd, dir, name, node string, now time.Time, compress bool) (Info, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Info{}, fmt.Errorf("snapshot folder %s: %w", dir, err)
	}
	base := FileName(name, node, now)
	path, raw := filepath.Join(dir, base), filepath.Join(dir, base)
	if compress {
		// The raw snapshot's name is none that List reads.
		path, raw = path+CompressedSuffix, path+".uncompressed"
	}
	if _, err := os.Stat(path); err == nil {
		return Info{}, fmt.Errorf("snapshot %s exists already; wait a second or choose another --name", path)
	}
	if _, err := etcdsnapshot.SaveWithVersion(ctx, zap.NewNop(), e.config(), raw); err != nil {
		return Info{}, fmt.Errorf("saving a snapshot of etcd at %s: %w", e.Endpoint, err)
	}
	if compress {
		err := compressFile(raw, path)
		os.Remove(raw)
		if err != nil {
			return Info{}, fmt.Errorf("compressing the snapshot: %w", err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	return localInfo(path, st.Size(), now), nil
}

// List returns the snapshots in dir, oldest first. A missing folder has none.
func List(dir string) ([]Info, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot folder %s: %w", dir, err)
	}
	var out []Info
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".part") {
			continue
		}
		taken, ok := takenAt(e.Name())
		if !ok {
			continue
		}
		st, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, localInfo(filepath.Join(dir, e.Name()), st.Size(), taken))
	}
	sortByTime(out)
	return out, nil
}

func localInfo(path string, size int64, taken time.Time) Info {
	return Info{Name: filepath.Base(path), Path: path, Location: "file://" + path, Size: size, Taken: taken}
}

// sortByTime sorts snapshots oldest first.
func sortByTime(list []Info) {
	sort.Slice(list, func(i, j int) bool {
		if !list[i].Taken.Equal(list[j].Taken) {
			return list[i].Taken.Before(list[j].Taken)
		}
		return list[i].Name < list[j].Name
	})
}

// beyondRetention are the snapshots called name of node in list (oldest
// first) that are older than the newest keep.
func beyondRetention(list []Info, name, node string, keep int) []Info {
	prefix := name + "-" + node + "-"
	var mine []Info
	for _, s := range list {
		if rest, ok := strings.CutPrefix(s.Name, prefix); ok && !strings.Contains(rest, "-") {
			mine = append(mine, s)
		}
	}
	if len(mine) <= keep {
		return nil
	}
	return mine[:len(mine)-keep]
}

// Delete removes the named snapshots from dir. A name that is not a
// snapshot there is an error, and nothing is removed.
func Delete(dir string, names ...string) error {
	all, err := List(dir)
	if err != nil {
		return err
	}
	byName := map[string]Info{}
	for _, s := range all {
		byName[s.Name] = s
	}
	for _, n := range names {
		if _, ok := byName[n]; !ok {
			return fmt.Errorf("no snapshot %q in %s (see 'hw etcd-snapshot ls')", n, dir)
		}
	}
	for _, n := range names {
		if err := os.Remove(byName[n].Path); err != nil {
			return err
		}
	}
	return nil
}

// Prune keeps the newest keep snapshots called name of node in dir and
// removes the older ones; it returns the names it removed.
func Prune(dir, name, node string, keep int) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("retention %d: keep at least 1 snapshot", keep)
	}
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, s := range beyondRetention(all, name, node, keep) {
		if err := os.Remove(s.Path); err != nil {
			return removed, err
		}
		removed = append(removed, s.Name)
	}
	return removed, nil
}

// LocalEtcd is the etcd member of the server whose certificates are in
// tlsDir, at endpoint, reached with the server's etcd client certificate.
func LocalEtcd(tlsDir, endpoint string) (Etcd, error) {
	files := pki.ServerLayout(tlsDir)
	for _, f := range []string{files.EtcdClient.CertFile, files.EtcdClient.KeyFile, files.EtcdServerCA.CertFile} {
		if _, err := os.Stat(f); err != nil {
			return Etcd{}, fmt.Errorf("no etcd client certificate of an hw server (%s): is --data-dir the server's?", f)
		}
	}
	tlsConfig, err := transport.TLSInfo{
		CertFile:      files.EtcdClient.CertFile,
		KeyFile:       files.EtcdClient.KeyFile,
		TrustedCAFile: files.EtcdServerCA.CertFile,
	}.ClientConfig()
	if err != nil {
		return Etcd{}, err
	}
	return Etcd{Endpoint: endpoint, TLS: tlsConfig}, nil
}
