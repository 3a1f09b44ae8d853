// Package crictl runs the host's crictl against hw's containerd. crictl is
// not built into hw: its Go module (sigs.k8s.io/cri-tools) cannot be fetched
// by hw's build, and its command is a main package that cannot be imported.
package crictl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotInstalled says what to do when no crictl is installed.
var ErrNotInstalled = errors.New("crictl is not built into hw and none is installed: install crictl " +
	"(https://github.com/kubernetes-sigs/cri-tools/releases) in a folder on PATH, or use 'hw ctr' " +
	"(containers, images and tasks of namespace k8s.io)")

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
