package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Extensions are the files the controller applies.
var Extensions = []string{".yaml", ".yml", ".json"}

// SkipSuffix beside FILE (FILE.skip) tells the controller to leave FILE alone.
const SkipSuffix = ".skip"

// isManifest reports whether a directory entry's name is a manifest: one of
// the Extensions, not hidden (editors' and installers' temporary files are).
func isManifest(name string) bool {
	return !strings.HasPrefix(name, ".") && slices.Contains(Extensions, strings.ToLower(filepath.Ext(name)))
}

// ObjectRef names one object a manifest created.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

func (r ObjectRef) String() string {
	if r.Namespace != "" {
		return fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name)
	}
	return fmt.Sprintf("%s %s", r.Kind, r.Name)
}

func refOf(u *unstructured.Unstructured) ObjectRef {
	return ObjectRef{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

// Parse reads the objects of one manifest: YAML documents separated by
// "---", or JSON; a List's items count as separate objects. Empty documents
// are skipped. Objects come back in apply order: namespaces and
// CustomResourceDefinitions first, since the rest may live in or be of them.
func Parse(data []byte) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		u := &unstructured.Unstructured{}
		jsonData, err := utilyaml.ToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if string(bytes.TrimSpace(jsonData)) == "null" {
			continue
		}
		if err := u.UnmarshalJSON(jsonData); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", doc, err)
			}
			for i := range list.Items {
				objs = append(objs, &list.Items[i])
			}
			continue
		}
		objs = append(objs, u)
	}
	for i, u := range objs {
		if u.GetName() == "" {
			if u.GetGenerateName() != "" {
				return nil, fmt.Errorf("%s #%d: generateName is not supported in an auto-deployed manifest: give it a name", u.GetKind(), i+1)
			}
			return nil, fmt.Errorf("%s #%d has no metadata.name", u.GetKind(), i+1)
		}
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return applyRank(a) - applyRank(b) })
	return objs, nil
}

// applyRank orders kinds that others depend on first.
func applyRank(u *unstructured.Unstructured) int {
	switch u.GroupVersionKind().GroupKind().String() {
	case "Namespace":
		return 0
	case "CustomResourceDefinition.apiextensions.k8s.io":
		return 1
	}
	return 2
}

// stripComments drops YAML comment lines, so a document of only comments
// counts as empty.
func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// ManifestName is the name of the Manifest object for a file: its base name,
// lower-cased, with anything a Kubernetes name cannot hold replaced by '-'.
// A name that had to change gets a short hash of the original, so two files
// never share one.
func ManifestName(file string) string {
	base := filepath.Base(file)
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	name := strings.Trim(b.String(), "-.")
	if name == "" {
		name = "manifest"
	}
	if name != base {
		name = fmt.Sprintf("%s-%s", name, shortHash([]byte(base)))
	}
	if len(name) > 253 {
		name = name[:244] + "-" + shortHash([]byte(base))
	}
	return name
}
