package install

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerImage builds the Dockerfile and runs a server from it the way
// README shows, where this machine has a Docker engine. Without one it says
// so and is skipped, never counted as a pass.
func TestDockerImage(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("skipped: no docker command here, so the Dockerfile is not built (install Docker to run this test)")
	}
	if out, err := exec.Command(docker, "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("skipped: no Docker engine reachable, so the Dockerfile is not built: docker info: %v: %s", err, firstLine(out))
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	image := fmt.Sprintf("hw-test:%d", os.Getpid())
	name := fmt.Sprintf("hw-test-%d", os.Getpid())
	build := exec.Command(docker, "build", "-t", image, root)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, tailLines(out, 40))
	}
	t.Cleanup(func() { exec.Command(docker, "rmi", "-f", image).Run() })

	out, err := exec.Command(docker, "run", "--rm", image, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Kubernetes v1.36.3") {
		t.Fatalf("docker run %s --version: %v\n%s", image, err, out)
	}

	// A server needs nothing from outside the machine: the pause image is
	// inside hw, so its node turns Ready with no registry.
	if out, err := exec.Command(docker, "run", "--privileged", "-d", "--name", name, "--hostname", name, image, "server").CombinedOutput(); err != nil {
		t.Fatalf("docker run server: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command(docker, "logs", "--tail", "60", name).CombinedOutput()
			t.Logf("docker logs %s:\n%s", name, logs)
		}
		exec.Command(docker, "rm", "-f", "-v", name).Run()
	})
	deadline := time.Now().Add(5 * time.Minute)
	for {
		out, err := exec.Command(docker, "exec", name, "kubectl", "get", "node", name,
			"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`).CombinedOutput()
		if err == nil && string(out) == "True" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s in the container not Ready within 5 minutes: %v %s", name, err, out)
		}
		time.Sleep(2 * time.Second)
	}
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

func tailLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
