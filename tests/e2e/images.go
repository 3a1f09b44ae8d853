//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hw-k8s/hw/pkg/ociimage"
)

// webappImage is the test workload's image name.
const webappImage = "hw.local/e2e-webapp:1"

// writeWebappImage builds the webapp from source and writes its image, as a
// docker-archive tarball, to path: an airgap image, imported offline by hw.
func writeWebappImage(t *testing.T, path string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "webapp")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/webapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building webapp: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	err := ociimage.Write(ociimage.Spec{
		Ref:        webappImage,
		Files:      []ociimage.File{{Source: bin, Path: "webapp"}},
		Entrypoint: []string{"/webapp"},
	}, path)
	if err != nil {
		t.Fatal(err)
	}
}
