// Package crictl runs crictl against hw's containerd: the crictl built from
// sigs.k8s.io/cri-tools and embedded in hw with its other programs (its
// command is a main package, which Go cannot import, so it travels as a
// program, as runc does), else one installed on PATH.
package crictl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hw-k8s/hw/pkg/assets"
	"github.com/hw-k8s/hw/pkg/config"
)

// ErrNotInstalled says what to do when no crictl is installed.
var ErrNotInstalled = errors.New("no crictl is installed on PATH either: run as root (hw unpacks its crictl into the data dir), " +
	"or use 'hw ctr' (containers, images and tasks of namespace k8s.io)")

// Unpack makes sure hw's own programs, crictl among them, are unpacked in
// dataDir (empty: the default) and returns crictl's path.
func Unpack(dataDir string) (string, error) {
	if dataDir == "" {
		dataDir = config.DefaultDataDir
	}
	set, err := assets.Embedded()
	if err != nil {
		return "", err
	}
	path := filepath.Join(set.BinDir(dataDir), "crictl")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if _, err := set.Extract(dataDir); err != nil {
		return "", fmt.Errorf("cannot unpack hw's crictl into %s: %w", dataDir, err)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("this hw was built without crictl")
	}
	return path, nil
}

// Find returns the first crictl in the PATH list that is not hw itself (an
// install may link crictl to hw, which would loop).
func Find(pathList, self string) (string, error) {
	selfReal, _ := filepath.EvalSymlinks(self)
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			continue
		}
		candidate := filepath.Join(dir, "crictl")
		info, err := os.Stat(candidate)
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			continue
		}
		if real, err := filepath.EvalSymlinks(candidate); err == nil && real == selfReal {
			continue
		}
		return candidate, nil
	}
	return "", ErrNotInstalled
}

// Env is env with crictl pointed at socket, unless the user chose an
// endpoint already.
func Env(env []string, socket string) []string {
	out := append([]string(nil), env...)
	for _, key := range []string{"CONTAINER_RUNTIME_ENDPOINT", "IMAGE_SERVICE_ENDPOINT"} {
		set := false
		for _, kv := range env {
			if strings.HasPrefix(kv, key+"=") && len(kv) > len(key)+1 {
				set = true
			}
		}
		if !set {
			out = append(out, key+"=unix://"+socket)
		}
	}
	return out
}
