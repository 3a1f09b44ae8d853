package crictl

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFindSkipsLinksToHW(t *testing.T) {
	self := filepath.Join(t.TempDir(), "hw")
	os.WriteFile(self, []byte("#!/bin/sh\n"), 0o755)
	linked, real := t.TempDir(), t.TempDir()
	os.Symlink(self, filepath.Join(linked, "crictl"))
	if _, err := Find(linked, self); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("only a link to hw on PATH: got %v, want ErrNotInstalled", err)
	}
	os.WriteFile(filepath.Join(real, "crictl"), []byte("#!/bin/sh\n"), 0o755)
	got, err := Find(linked+":"+real, self)
	if err != nil || got != filepath.Join(real, "crictl") {
		t.Errorf("got %q, %v; want the real crictl in %s", got, err, real)
	}
}

func TestEnvPointsAtHWUnlessChosen(t *testing.T) {
	env := Env([]string{"PATH=/bin"}, "/run/hw/containerd/containerd.sock")
	if !slices.Contains(env, "CONTAINER_RUNTIME_ENDPOINT=unix:///run/hw/containerd/containerd.sock") ||
		!slices.Contains(env, "IMAGE_SERVICE_ENDPOINT=unix:///run/hw/containerd/containerd.sock") {
		t.Errorf("env %v", env)
	}
	env = Env([]string{"CONTAINER_RUNTIME_ENDPOINT=unix:///other.sock"}, "/run/hw/containerd/containerd.sock")
	if slices.Contains(env, "CONTAINER_RUNTIME_ENDPOINT=unix:///run/hw/containerd/containerd.sock") {
		t.Errorf("user's endpoint overridden: %v", env)
	}
}
