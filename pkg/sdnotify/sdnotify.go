// Package sdnotify tells a service manager how hw is doing, over the
// sd_notify protocol: systemd's Type=notify units wait for READY=1, so
// `systemctl start hw` returns once the node is Ready, not when the process
// is merely running. Without NOTIFY_SOCKET (hw not started by systemd, or by
// a manager that does not listen) every call does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// Notifier sends hw's state to one service manager socket. The zero value
// sends nothing.
type Notifier struct{ socket string }

// FromEnvironment returns a Notifier for $NOTIFY_SOCKET and removes that
// variable from hw's environment. It must run before hw starts any process:
// containerd's shims would pass the variable on to runc, and runc then makes
// every container start wait for the container's own READY=1.
func FromEnvironment() *Notifier {
	n := &Notifier{socket: os.Getenv("NOTIFY_SOCKET")}
	os.Unsetenv("NOTIFY_SOCKET")
	return n
}

// Ready says start-up has finished.
func (n *Notifier) Ready() error { return n.send("READY=1\nSTATUS=node ready") }

// Stopping says hw has begun to shut down.
func (n *Notifier) Stopping() error { return n.send("STOPPING=1") }

// send writes one datagram to the socket. A leading '@' names an abstract
// socket, as systemd's protocol allows.
func (n *Notifier) send(state string) error {
	if n == nil || n.socket == "" {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if n.socket[0] == '@' {
		addr.Name = "\x00" + n.socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("telling the service manager %q: %w", state, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("telling the service manager %q: %w", state, err)
	}
	return nil
}
