// Package addons writes hw's packaged add-on manifests (the repo's
// manifests/ folder, embedded) into the server's auto-deploy folder with the
// cluster's settings, and removes those the user disabled, so the
// auto-deploy controller creates, updates and prunes their objects.
package addons

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hw-k8s/hw/manifests"
	"github.com/hw-k8s/hw/pkg/atomicfile"
	"github.com/hw-k8s/hw/pkg/config"
)

// Change is what Write did to one add-on's file.
type Change struct {
	AddOn, File, Action string // Action: written, unchanged, removed, skipped (a .skip file)
}

// Write brings dir in line with the packaged add-ons: each enabled one's
// file is (re)written when its content differs, a disabled one's file is
// removed. An add-on whose FILE.skip exists is left alone either way.
func Write(dir string, s manifests.Settings, disabled func(string) bool) ([]Change, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var changes []Change
	for _, name := range config.AddOns {
		if !manifests.Has(name) {
			continue // runs in hw's process only (servicelb)
		}
		file := filepath.Join(dir, name+".yaml")
		c := Change{AddOn: name, File: file}
		switch {
		case exists(file + ".skip"):
			c.Action = "skipped"
		case disabled(name):
			err := os.Remove(file)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return changes, err
			}
			c.Action = "removed"
		default:
			data, err := manifests.Render(name, s)
			if err != nil {
				return changes, err
			}
			if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, data) {
				c.Action = "unchanged"
				break
			}
			if err := atomicfile.Write(file, data, 0o600); err != nil {
				return changes, fmt.Errorf("writing add-on %s: %w", name, err)
			}
			c.Action = "written"
		}
		changes = append(changes, c)
	}
	return changes, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
