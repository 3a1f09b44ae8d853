// Package images imports container images from tarballs into containerd's
// Kubernetes namespace, so pods start with no registry at all.
package images

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/klauspost/compress/zstd"
	"k8s.io/klog/v2"
)

// Namespace is the containerd namespace the CRI plugin uses.
const Namespace = "k8s.io"

// Labels that keep an image: the CRI plugin never garbage-collects pinned images.
const (
	pinnedLabel  = "io.cri-containerd.pinned"
	managedLabel = "io.cri-containerd.image"
)

// Importer imports tarballs into one containerd.
type Importer struct {
	Client      *containerd.Client
	Snapshotter string
	// StateFile records what was imported, so unchanged files are skipped.
	StateFile string
}

// Tarballs lists the image archives in dir: *.tar, *.tar.gz, *.tgz, *.tar.zst.
func Tarballs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && isTarball(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

func isTarball(name string) bool {
	for _, ext := range []string{".tar", ".tar.gz", ".tgz", ".tar.zst"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// fingerprint identifies a file's content cheaply: a changed file gets a new
// size or modification time.
func fingerprint(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", st.Size(), st.ModTime().UnixNano()), nil
}

// ImportAll imports every file that changed since the last import and pins
// its images. It returns the names of the images it imported.
func (im *Importer) ImportAll(ctx context.Context, files []string) ([]string, error) {
	log := klog.FromContext(ctx)
	state := map[string]string{}
	if data, err := os.ReadFile(im.StateFile); err == nil {
		_ = json.Unmarshal(data, &state)
	}
	var imported []string
	for _, f := range files {
		fp, err := fingerprint(f)
		if err != nil {
			return imported, err
		}
		// Images are unpacked for one snapshotter: another one needs a new import.
		fp += ":" + im.Snapshotter
		if state[f] == fp {
			log.V(1).Info("Image archive unchanged, not importing", "file", f)
			continue
		}
		names, err := im.importFile(ctx, f)
		if err != nil {
			return imported, fmt.Errorf("importing images from %s: %w", f, err)
		}
		log.Info("Imported images", "file", f, "images", names)
		imported = append(imported, names...)
		state[f] = fp
		data, _ := json.Marshal(state)
		if err := os.WriteFile(im.StateFile, data, 0o600); err != nil {
			return imported, err
		}
	}
	return imported, nil
}

func (im *Importer) importFile(ctx context.Context, path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".gz"), strings.HasSuffix(path, ".tgz"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		defer gz.Close()
		r = gz
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	imgs, err := im.Client.Import(ctx, r)
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no image for this machine's platform in the archive (is os/architecture set in the image config?)")
	}
	var names []string
	for _, img := range imgs {
		if err := im.pinAndUnpack(ctx, img); err != nil {
			return names, fmt.Errorf("%s: %w", img.Name, err)
		}
		names = append(names, img.Name)
	}
	return names, nil
}

func (im *Importer) pinAndUnpack(ctx context.Context, img images.Image) error {
	if img.Labels == nil {
		img.Labels = map[string]string{}
	}
	img.Labels[pinnedLabel] = "pinned"
	img.Labels[managedLabel] = "managed"
	if _, err := im.Client.ImageService().Update(ctx, img, "labels."+pinnedLabel, "labels."+managedLabel); err != nil {
		return err
	}
	return containerd.NewImage(im.Client, img).Unpack(ctx, im.Snapshotter)
}
