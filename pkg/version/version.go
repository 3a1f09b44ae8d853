// Package version holds the versions baked into the hw binary at link time.
//
// The Makefile sets these with -ldflags -X; the defaults mark a build that did
// not go through it (plain `go build`).
package version

import "fmt"

var (
	// Version is hw's own release version.
	Version = "v0.0.0-dev"
	// GitCommit is the commit hw was built from.
	GitCommit = "unknown"
	// Kubernetes is the version of the embedded Kubernetes components.
	Kubernetes = "unknown"
	// Etcd is the version of the embedded etcd.
	Etcd = "unknown"
	// Containerd is the version of the embedded containerd.
	Containerd = "unknown"
)

// String is the one-line summary printed by `hw --version`.
func String() string {
	return fmt.Sprintf("hw version %s (%s)\nkubernetes %s\netcd %s\ncontainerd %s",
		Version, GitCommit, Kubernetes, Etcd, Containerd)
}
