package addons

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hw-k8s/hw/manifests"
	"github.com/hw-k8s/hw/pkg/config"
	"github.com/hw-k8s/hw/pkg/deploy"
)

var settings = manifests.Settings{ClusterDNS: "10.99.0.10", ClusterDomain: "example.internal", MetricsPort: 10262, ServerCABase64: "Q0E="}

func actions(changes []Change) map[string]string {
	out := map[string]string{}
	for _, c := range changes {
		out[c.AddOn] = c.Action
	}
	return out
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	none := func(string) bool { return false }
	changes, err := Write(dir, settings, none)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"coredns", "local-storage", "metrics-server"} {
		if actions(changes)[name] != "written" {
			t.Errorf("%s: %q, want written", name, actions(changes)[name])
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "servicelb.yaml")); err == nil {
		t.Error("servicelb has no manifest: it runs in hw's process")
	}
	coredns, _ := os.ReadFile(filepath.Join(dir, "coredns.yaml"))
	for _, want := range []string{"bind 10.99.0.10", "kubernetes example.internal in-addr.arpa", "clusterIP: 10.99.0.10"} {
		if !strings.Contains(string(coredns), want) {
			t.Errorf("coredns.yaml lacks %q", want)
		}
	}

	// Unchanged on a second start; a user's edit is put back.
	edited := filepath.Join(dir, "local-storage.yaml")
	os.WriteFile(edited, []byte("edited"), 0o600)
	changes, _ = Write(dir, settings, none)
	if a := actions(changes); a["coredns"] != "unchanged" || a["local-storage"] != "written" {
		t.Errorf("second start: %v", a)
	}

	// .skip leaves a file alone; --disable removes the file.
	os.WriteFile(filepath.Join(dir, "coredns.yaml.skip"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "coredns.yaml"), []byte("mine"), 0o600)
	changes, err = Write(dir, settings, func(n string) bool { return n == "metrics-server" || n == "coredns" })
	if err != nil {
		t.Fatal(err)
	}
	if a := actions(changes); a["coredns"] != "skipped" || a["metrics-server"] != "removed" {
		t.Errorf("with coredns.skip and metrics-server disabled: %v", a)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "coredns.yaml")); string(data) != "mine" {
		t.Errorf("a skipped file was changed: %q", data)
	}
	if _, err := os.Stat(filepath.Join(dir, "metrics-server.yaml")); !os.IsNotExist(err) {
		t.Errorf("disabled add-on's file still there: %v", err)
	}
}

// Every packaged manifest renders to objects the auto-deploy controller accepts.
func TestPackagedManifestsParse(t *testing.T) {
	for _, name := range config.AddOns {
		if !manifests.Has(name) {
			continue
		}
		data, err := manifests.Render(name, settings)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := deploy.Parse(data)
		if err != nil || len(objs) == 0 {
			t.Errorf("%s: %d objects, %v", name, len(objs), err)
		}
		for _, o := range objs {
			if o.GetName() == "" || o.GetKind() == "" {
				t.Errorf("%s: object without kind or name: %v", name, o)
			}
		}
	}
}
