package dns

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// withKubeconfig gives every `kubernetes` plugin block of corefile the node's
// credentials. The Corefile lives in one ConfigMap shared by all nodes, while
// each node's credentials are its own file, so hw adds the path itself. A
// Corefile that names a kubeconfig anywhere is left as the user wrote it.
func withKubeconfig(corefile, kubeconfig string) string {
	if hasDirective(corefile, "kubeconfig") {
		return corefile
	}
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(corefile))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "kubernetes" {
			out.WriteString(line + "\n")
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		if fields[len(fields)-1] == "{" {
			fmt.Fprintf(&out, "%s\n%s    kubeconfig %s\n", line, indent, kubeconfig)
			continue
		}
		fmt.Fprintf(&out, "%s {\n%s    kubeconfig %s\n%s}\n", line, indent, kubeconfig, indent)
	}
	return out.String()
}

// hasDirective reports whether a line of corefile starts with name.
func hasDirective(corefile, name string) bool {
	for _, line := range strings.Split(corefile, "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && fields[0] == name {
			return true
		}
	}
	return false
}

// customSuffixes are the keys of the coredns-custom ConfigMap hw writes out:
// NAME.override is imported inside the main server block, NAME.server beside
// it as a server block of its own (the names k3s users know).
var customSuffixes = []string{".override", ".server"}

// writeCustom makes dir hold exactly the usable entries of data, one file
// per key, and reports whether anything changed.
func writeCustom(dir string, data map[string]string) (bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	changed := false
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if _, keep := data[e.Name()]; !keep || !customKey(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return false, err
			}
			changed = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(data)) {
		if !customKey(k) {
			continue
		}
		path := filepath.Join(dir, k)
		if old, err := os.ReadFile(path); err == nil && string(old) == data[k] {
			continue
		}
		if err := os.WriteFile(path, []byte(data[k]), 0o600); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, nil
}

func customKey(k string) bool {
	if strings.ContainsAny(k, "/\\") || strings.HasPrefix(k, ".") {
		return false
	}
	for _, s := range customSuffixes {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}
