//go:build e2e

package e2e

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/hw-k8s/hw/pkg/ociimage"
)

// webappImage is the test workload's image name.
const webappImage = "hw.local/e2e-webapp:1"

// writeWebappImage builds the webapp from source and writes its image, as a
// docker-archive tarball, to path: an airgap image, imported offline by hw.
// It returns the webapp program, for use outside the cluster.
func writeWebappImage(t *testing.T, path string) string {
	t.Helper()
	bin := buildWebapp(t)
	writeWebappImageFrom(t, bin, path)
	return bin
}

// buildWebapp builds the webapp program from source.
func buildWebapp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "webapp")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/webapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building webapp: %v\n%s", err, out)
	}
	return bin
}

// writeWebappImageFrom writes the image of an already built webapp.
// A path ending in .tar.gz or .tar.zst gets a compressed archive, as a user
// may put in the airgap folder.
func writeWebappImageFrom(t *testing.T, bin, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tarPath := path
	if !strings.HasSuffix(path, ".tar") {
		tarPath = filepath.Join(t.TempDir(), "webapp.tar")
	}
	err := ociimage.Write(ociimage.Spec{
		Ref:        webappImage,
		Files:      []ociimage.File{{Source: bin, Path: "webapp"}},
		Entrypoint: []string{"/webapp"},
	}, tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if tarPath != path {
		if err := compressFile(tarPath, path); err != nil {
			t.Fatal(err)
		}
	}
}

// compressFile writes src to dst with gzip or zstd, as dst's name says.
func compressFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	var w io.WriteCloser
	switch {
	case strings.HasSuffix(dst, ".tar.gz"):
		w = gzip.NewWriter(out)
	case strings.HasSuffix(dst, ".tar.zst"):
		if w, err = zstd.NewWriter(out); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown compression for %s", dst)
	}
	if _, err := io.Copy(w, in); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return out.Close()
}

// serveOutside runs the webapp on a test host outside the cluster, on port
// 9090, until the test ends; it returns its base URL.
func serveOutside(t *testing.T, host *testNode, webapp string) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", host.netns, webapp, "serve")
	cmd.Env = append(os.Environ(), "LISTEN=:9090")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return "http://" + hostPort(host.ip, 9090)
}
