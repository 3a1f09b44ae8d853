package assets

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/klauspost/compress/zstd"
)

func compressed(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(data)
	enc.Close()
	return buf.Bytes()
}

func testSet(t *testing.T, runc []byte, recordedSum string) *Set {
	t.Helper()
	fsys := fstest.MapFS{
		"runc.zst":      {Data: compressed(t, runc)},
		"pause.tar.zst": {Data: compressed(t, []byte("image"))},
		"manifest":      {Data: []byte("runc 755 " + recordedSum + "\npause.tar 644 " + sum([]byte("image")) + "\n")},
	}
	s, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestExtractVerifiesAndIsIdempotent(t *testing.T) {
	data := t.TempDir()
	runc := []byte("#!/bin/sh\necho runc\n")
	s := testSet(t, runc, sum(runc))
	n, err := s.Extract(data)
	if err != nil || n != 2 {
		t.Fatalf("Extract = %d, %v; want 2 files", n, err)
	}
	got, err := os.ReadFile(filepath.Join(s.BinDir(data), "runc"))
	if err != nil || !bytes.Equal(got, runc) {
		t.Fatalf("runc on disk = %q, %v", got, err)
	}
	if st, _ := os.Stat(filepath.Join(s.BinDir(data), "runc")); st.Mode().Perm() != 0o755 {
		t.Errorf("runc mode %o, want 755", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(s.ImagesDir(data), "pause.tar")); err != nil {
		t.Errorf("image not in images dir: %v", err)
	}
	if n, err := s.Extract(data); err != nil || n != 0 {
		t.Errorf("second Extract = %d, %v; want nothing to do", n, err)
	}
	// A file changed on disk is replaced.
	os.WriteFile(filepath.Join(s.BinDir(data), "runc"), []byte("tampered"), 0o755)
	if n, err := s.Extract(data); err != nil || n != 1 {
		t.Errorf("Extract after tampering = %d, %v; want 1", n, err)
	}
}

func TestChecksumMismatchIsRefused(t *testing.T) {
	data := t.TempDir()
	s := testSet(t, []byte("real"), sum([]byte("something else")))
	_, err := s.Extract(data)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("got %v, want a checksum mismatch", err)
	}
	if _, err := os.Stat(filepath.Join(s.BinDir(data), "runc")); err == nil {
		t.Error("a file with the wrong checksum was left in place")
	}
}

func TestDirDependsOnContents(t *testing.T) {
	a := testSet(t, []byte("a"), sum([]byte("a")))
	b := testSet(t, []byte("b"), sum([]byte("b")))
	if a.Dir("/d") == b.Dir("/d") {
		t.Error("different contents extract to the same folder")
	}
}

func TestMissingManifestSaysHowToBuild(t *testing.T) {
	_, err := Load(fstest.MapFS{})
	if err == nil || !strings.Contains(err.Error(), "make") {
		t.Errorf("got %v, want advice to build with make", err)
	}
}
