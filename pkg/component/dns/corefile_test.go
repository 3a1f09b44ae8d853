package dns

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWithKubeconfig(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{
			name: "block",
			in:   ".:53 {\n    kubernetes cluster.local {\n        pods insecure\n    }\n}\n",
			want: ".:53 {\n    kubernetes cluster.local {\n        kubeconfig /k\n        pods insecure\n    }\n}\n",
		},
		{
			name: "no block",
			in:   ".:53 {\n  kubernetes cluster.local\n}\n",
			want: ".:53 {\n  kubernetes cluster.local {\n      kubeconfig /k\n  }\n}\n",
		},
		{
			name: "the user's own kubeconfig is kept",
			in:   ".:53 {\n  kubernetes cluster.local {\n    kubeconfig /mine\n  }\n}\n",
			want: ".:53 {\n  kubernetes cluster.local {\n    kubeconfig /mine\n  }\n}\n",
		},
		{
			name: "no kubernetes plugin",
			in:   ".:53 {\n  forward . /etc/resolv.conf\n}\n",
			want: ".:53 {\n  forward . /etc/resolv.conf\n}\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withKubeconfig(tc.in, "/k"); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestWriteCustom(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "custom")
	changed, err := writeCustom(dir, map[string]string{"a.override": "hosts", "b.server": "x:53 {}", "notes.txt": "ignored", "../evil.server": "no"})
	if err != nil || !changed {
		t.Fatalf("first write: changed %v, %v", changed, err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"a.override", "b.server"}) {
		t.Errorf("files %v; want only the .override and .server keys", got)
	}
	if changed, err := writeCustom(dir, map[string]string{"a.override": "hosts", "b.server": "x:53 {}"}); err != nil || changed {
		t.Errorf("same data again: changed %v, %v; want no change", changed, err)
	}
	if changed, err := writeCustom(dir, map[string]string{"a.override": "log"}); err != nil || !changed {
		t.Errorf("edit and removal: changed %v, %v", changed, err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"a.override"}) {
		t.Errorf("files %v after b.server left the ConfigMap", got)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "a.override")); string(data) != "log" {
		t.Errorf("a.override holds %q", data)
	}
}

func names(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestChecksumCoversImports(t *testing.T) {
	a := checksum("x", map[string]string{"a.override": "1"})
	b := checksum("x", map[string]string{"a.override": "2"})
	if a == b || !strings.EqualFold(a, checksum("x", map[string]string{"a.override": "1"})) {
		t.Error("checksum must change with the imports and only with them")
	}
}
