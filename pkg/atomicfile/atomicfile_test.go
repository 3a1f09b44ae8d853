package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "file")
	if err := Write(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Dir(path)); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("parent folder: %v, %v; want mode 700", info, err)
	}
	check := func(want string, mode os.FileMode) {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil || string(data) != want {
			t.Errorf("content = %q, %v; want %q", data, err, want)
		}
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != mode {
			t.Errorf("mode = %v, %v; want %o", info.Mode().Perm(), err, mode)
		}
	}
	check("one", 0o600)

	// Same content, new mode: only the mode changes.
	if err := Write(path, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("one", 0o644)

	if err := Write(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("two", 0o600)

	// No temporary file is left behind.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only the file", len(entries))
	}
}
