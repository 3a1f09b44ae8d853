// Package assets holds the programs hw carries inside its binary — runc,
// containerd's runc shim, the CNI plugins and the pause image — and puts
// them on disk at start.
//
// They are extracted to <data-dir>/data/<hash>/, where hash names the set of
// files, so a new hw never runs an old runc and an unchanged one extracts
// nothing. Every file is checked against the sha256 recorded at build time.
package assets

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

//go:embed files
var embedded embed.FS

// PauseImageRef is the name the pause image is imported and pinned under.
const PauseImageRef = "hw.local/pause:1"

// Entry is one embedded file.
type Entry struct {
	Name   string
	Mode   os.FileMode
	SHA256 string
}

// Set is the embedded files and where they are extracted.
type Set struct {
	fsys    fs.FS
	entries []Entry
	hash    string
}

// Embedded returns the set built into this binary. A binary built without
// `make` has none, and says how to get them.
func Embedded() (*Set, error) {
	sub, _ := fs.Sub(embedded, "files")
	return Load(sub)
}

// Load reads the manifest of a set from fsys.
func Load(fsys fs.FS) (*Set, error) {
	manifest, err := fs.ReadFile(fsys, "manifest")
	if err != nil {
		return nil, errors.New("this hw binary carries no runc, shim, CNI plugins or pause image; build it with 'make' rather than 'go build'")
	}
	s := &Set{fsys: fsys}
	sum := sha256.Sum256(manifest)
	s.hash = hex.EncodeToString(sum[:])[:16]
	sc := bufio.NewScanner(bytes.NewReader(manifest))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		mode, err := strconv.ParseUint(f[1], 8, 32)
		if err != nil {
			return nil, fmt.Errorf("embedded manifest: %v", err)
		}
		s.entries = append(s.entries, Entry{Name: f[0], Mode: os.FileMode(mode), SHA256: f[2]})
	}
	return s, nil
}

// Dir is where the set is extracted below dataDir.
func (s *Set) Dir(dataDir string) string { return filepath.Join(dataDir, "data", s.hash) }

// BinDir holds the extracted programs.
func (s *Set) BinDir(dataDir string) string { return filepath.Join(s.Dir(dataDir), "bin") }

// ImagesDir holds the extracted image tarballs.
func (s *Set) ImagesDir(dataDir string) string { return filepath.Join(s.Dir(dataDir), "images") }

// Extract writes every file below Dir(dataDir), skipping files already there
// with the right checksum, and verifying each one it writes.
func (s *Set) Extract(dataDir string) (extracted int, err error) {
	for _, e := range s.entries {
		dest := s.destination(dataDir, e)
		if sumFile(dest) == e.SHA256 {
			continue
		}
		if err := s.extractOne(e, dest); err != nil {
			return extracted, fmt.Errorf("extracting %s: %w", e.Name, err)
		}
		extracted++
	}
	return extracted, nil
}

func (s *Set) destination(dataDir string, e Entry) string {
	if strings.HasSuffix(e.Name, ".tar") {
		return filepath.Join(s.ImagesDir(dataDir), e.Name)
	}
	return filepath.Join(s.BinDir(dataDir), e.Name)
}

func (s *Set) extractOne(e Entry, dest string) error {
	src, err := s.fsys.Open(e.Name + ".zst")
	if err != nil {
		return err
	}
	defer src.Close()
	dec, err := zstd.NewReader(src)
	if err != nil {
		return err
	}
	defer dec.Close()
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+e.Name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), dec); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(e.Mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		return fmt.Errorf("checksum mismatch: got %s, want %s; the hw binary is damaged, reinstall it", got, e.SHA256)
	}
	return os.Rename(tmp.Name(), dest)
}

func sumFile(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
