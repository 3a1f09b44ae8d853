package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T) (*net.UnixConn, string) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, path
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifierSendsStateAndHidesTheSocket(t *testing.T) {
	conn, path := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	n := FromEnvironment()
	if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		t.Errorf("NOTIFY_SOCKET=%q still set: processes hw starts would inherit it", v)
	}
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "READY=1\nSTATUS=node ready" {
		t.Errorf("got %q", got)
	}
	if err := n.Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "STOPPING=1" {
		t.Errorf("got %q", got)
	}
}

func TestNotifierWithoutSocketDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := FromEnvironment().Ready(); err != nil {
		t.Errorf("no socket: %v", err)
	}
	var zero *Notifier
	if err := zero.Ready(); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
}

func TestNotifierNamesAMissingSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent.sock"))
	if err := FromEnvironment().Ready(); err == nil {
		t.Error("sending to a missing socket succeeded")
	}
}
