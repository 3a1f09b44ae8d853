// Package preflight checks the host before hw changes anything, so that a
// problem the user can fix is reported as one clear line.
package preflight

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Port is a TCP port a component will listen on.
type Port struct {
	Host      string
	Number    int
	Component string
	// Flag is the hw flag that moves it, if any.
	Flag string
}

// CheckPorts fails on the first port that another process already holds.
func CheckPorts(ports []Port) error {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(p.Host, fmt.Sprint(p.Number)))
		if err != nil {
			fix := "stop the process that holds it (see: ss -ltnp 'sport = :" + fmt.Sprint(p.Number) + "')"
			if p.Flag != "" {
				fix += " or choose another port with " + p.Flag
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("port %d (%s) is already in use; %s", p.Number, p.Component, fix)
			}
			return fmt.Errorf("cannot listen on %s:%d for %s: %v", p.Host, p.Number, p.Component, err)
		}
		l.Close()
	}
	return nil
}

// CheckWritableDir creates dir if needed and proves a file can be written in it.
func CheckWritableDir(dir, flag string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s cannot be created: %v; choose another %s or fix its parent's permissions", dir, unwrapPath(err), flag)
	}
	f, err := os.CreateTemp(dir, ".hw-write-test-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %v; choose another %s or fix its permissions", dir, unwrapPath(err), flag)
	}
	name := f.Name()
	f.Close()
	return os.Remove(filepath.Clean(name))
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Tool is a host program hw needs, and the Debian/Ubuntu package that has it.
type Tool struct {
	Name, Package string
}

// CheckTools names every tool not found with lookPath (nil: exec.LookPath),
// with the packages that bring them; user says who needs them.
func CheckTools(user string, tools []Tool, lookPath func(string) (string, error)) error {
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	var missing, packages []string
	seen := map[string]bool{}
	for _, tool := range tools {
		if _, err := lookPath(tool.Name); err != nil {
			missing = append(missing, tool.Name)
			if !seen[tool.Package] {
				seen[tool.Package] = true
				packages = append(packages, tool.Package)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s needs %s, not found on PATH; install them (Debian/Ubuntu: apt-get install %s)",
		user, strings.Join(missing, ", "), strings.Join(packages, " "))
}
