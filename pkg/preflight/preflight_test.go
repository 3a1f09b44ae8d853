package preflight

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPortInUseIsNamed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	err = CheckPorts([]Port{{Host: "127.0.0.1", Number: port, Component: "kube-apiserver", Flag: "--https-listen-port"}})
	if err == nil {
		t.Fatal("a held port passed the check")
	}
	for _, want := range []string{"already in use", "kube-apiserver", "--https-listen-port"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	l.Close()
	if err := CheckPorts([]Port{{Host: "127.0.0.1", Number: port, Component: "x"}}); err != nil {
		t.Errorf("a free port failed the check: %v", err)
	}
}

func TestDataDirNotWritable(t *testing.T) {
	parent := t.TempDir()
	file := filepath.Join(parent, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A data dir below a regular file can never be created, even by root.
	err := CheckWritableDir(filepath.Join(file, "data"), "--data-dir")
	if err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("got %v, want an error naming --data-dir", err)
	}
	if err := CheckWritableDir(filepath.Join(parent, "ok"), "--data-dir"); err != nil {
		t.Errorf("writable dir: %v", err)
	}
}
