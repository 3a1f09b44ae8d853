package deploy

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestParseOrdersAndFlattens(t *testing.T) {
	data := []byte(`# leading comment
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  a: "1"
---
# a document of comments only
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: web
- apiVersion: v1
  kind: Namespace
  metadata:
    name: demo
`)
	objs, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, refOf(o).String())
	}
	want := "Namespace demo|CustomResourceDefinition widgets.example.com|ConfigMap demo/settings|Service web"
	if strings.Join(got, "|") != want {
		t.Errorf("apply order %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestParseJSON(t *testing.T) {
	objs, err := Parse([]byte(`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}`))
	if err != nil || len(objs) != 1 || objs[0].GetName() != "x" {
		t.Fatalf("got %v, %v", objs, err)
	}
}

func TestParseRefusals(t *testing.T) {
	for name, tc := range map[string]struct{ data, want string }{
		"no name":       {"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "ConfigMap #1 has no metadata.name"},
		"generate name": {"apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: x-\n", "generateName is not supported"},
		"bad yaml":      {"apiVersion: v1\nkind: [\n", "document 1"},
		"no kind":       {"apiVersion: v1\nmetadata:\n  name: x\n", "document 1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestManifestName(t *testing.T) {
	seen := map[string]string{}
	for _, file := range []string{"/x/coredns.yaml", "/x/My App.yaml", "/x/my-app.yaml", "/x/MY_APP.yaml", "/x/___.json", "/x/" + strings.Repeat("a", 300) + ".yaml"} {
		name := ManifestName(file)
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("%s: %q is not a valid name: %v", file, name, errs)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("%s and %s share the name %q", file, other, name)
		}
		seen[name] = file
	}
	if got := ManifestName("/x/coredns.yaml"); got != "coredns.yaml" {
		t.Errorf("a valid file name is kept as it is: got %q", got)
	}
}

func TestIsManifest(t *testing.T) {
	for name, want := range map[string]bool{
		"a.yaml": true, "b.YML": true, "c.json": true, "d.yaml.skip": false, ".e.yaml.swp": false,
		".hidden.yaml": false, "notes.txt": false, "f.yaml~": false,
	} {
		if got := isManifest(name); got != want {
			t.Errorf("isManifest(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestFieldManagerFits(t *testing.T) {
	if fm := fieldManager(strings.Repeat("a", 253)); len(fm) > 128 {
		t.Errorf("field manager of %d characters; the apiserver allows 128", len(fm))
	}
}
