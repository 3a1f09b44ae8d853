//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var manifestGVR = schema.GroupVersionResource{Group: "hw.io", Version: "v1", Resource: "manifests"}

// TestManifests drops files into the server's manifests folder as a user
// would and checks what kubectl shows: objects created, updated, deleted
// with their file; a broken file reported; a .skip file obeyed.
func TestManifests(t *testing.T) {
	netw := newNetwork(t)
	node := newHWNode(t, netw.addNode(t, "server"))
	p := node.server(t)
	node.waitControlPlane(t, p, 3*time.Minute)
	client := node.client(t)
	dyn, err := dynamic.NewForConfig(node.restConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(node.dataDir, "server", "manifests")
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	configMapData := func(ctx context.Context, ns, name string) (map[string]string, error) {
		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return cm.Data, nil
	}
	manifestState := func(ctx context.Context, name string) (state, message string, count int64, err error) {
		m, err := dyn.Resource(manifestGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", "", 0, err
		}
		state, _, _ = unstructured.NestedString(m.Object, "status", "state")
		message, _, _ = unstructured.NestedString(m.Object, "status", "message")
		count, _, _ = unstructured.NestedInt64(m.Object, "status", "objectCount")
		return state, message, count, nil
	}

	write("demo.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  greeting: hello
---
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: in-default
data:
  a: "1"
`)
	eventually(t, time.Minute, "demo.yaml applied", func(ctx context.Context) error {
		data, err := configMapData(ctx, "demo", "settings")
		if err != nil || data["greeting"] != "hello" {
			return fmt.Errorf("demo/settings: %v %v", data, err)
		}
		if _, err := configMapData(ctx, "default", "in-default"); err != nil {
			return err
		}
		state, msg, count, err := manifestState(ctx, "demo.yaml")
		if err != nil || state != "Applied" || count != 3 {
			return fmt.Errorf("Manifest demo.yaml: %s %q %d objects %v", state, msg, count, err)
		}
		return nil
	})
	if out, err := node.kubectl(t, "get", "manifests"); err != nil || !strings.Contains(out, "demo.yaml") || !strings.Contains(out, "Applied") {
		t.Errorf("kubectl get manifests: %v\n%s", err, out)
	}

	// Editing the file updates its objects and deletes the one it dropped.
	write("demo.yaml", `apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  greeting: bonjour
`)
	eventually(t, time.Minute, "demo.yaml's edit applied", func(ctx context.Context) error {
		data, err := configMapData(ctx, "demo", "settings")
		if err != nil || data["greeting"] != "bonjour" {
			return fmt.Errorf("demo/settings: %v %v", data, err)
		}
		if _, err := configMapData(ctx, "default", "in-default"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("default/in-default, dropped from the file, still there: %v", err)
		}
		return nil
	})

	// A broken file is reported on its Manifest and in an event; nothing else stops.
	write("broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
	eventually(t, time.Minute, "broken.yaml reported", func(ctx context.Context) error {
		state, msg, _, err := manifestState(ctx, "broken.yaml")
		if err != nil || state != "Failed" || !strings.Contains(msg, "no metadata.name") {
			return fmt.Errorf("Manifest broken.yaml: %s %q %v", state, msg, err)
		}
		events, err := client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=broken.yaml,reason=Failed"})
		if err != nil || len(events.Items) == 0 {
			return fmt.Errorf("no Failed event for broken.yaml: %v", err)
		}
		return nil
	})

	// FILE.skip: the file is left alone.
	write("held.yaml.skip", "")
	write("held.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\ndata:\n  a: \"1\"\n")
	eventually(t, time.Minute, "held.yaml skipped", func(ctx context.Context) error {
		state, msg, _, err := manifestState(ctx, "held.yaml")
		if err != nil || state != "Skipped" {
			return fmt.Errorf("Manifest held.yaml: %s %q %v", state, msg, err)
		}
		return nil
	})
	if _, err := configMapData(context.Background(), "default", "held"); !apierrors.IsNotFound(err) {
		t.Errorf("held.yaml was applied although held.yaml.skip exists: %v", err)
	}
	// Without the .skip file it is applied.
	if err := os.Remove(filepath.Join(dir, "held.yaml.skip")); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "held.yaml applied once its .skip is gone", func(ctx context.Context) error {
		_, err := configMapData(ctx, "default", "held")
		return err
	})

	// Deleting the file deletes what it made, and its Manifest.
	if err := os.Remove(filepath.Join(dir, "demo.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "demo.yaml's objects deleted with it", func(ctx context.Context) error {
		if _, err := dyn.Resource(manifestGVR).Get(ctx, "demo.yaml", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Manifest demo.yaml still there: %v", err)
		}
		if _, err := client.CoreV1().Namespaces().Get(ctx, "demo", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace demo still there: %v", err)
		}
		return nil
	})
	if _, err := configMapData(context.Background(), "default", "held"); err != nil {
		t.Errorf("deleting demo.yaml touched held.yaml's ConfigMap: %v", err)
	}

	// A file changed while hw was stopped is applied when it starts.
	if err := p.stop(t, time.Minute); err != nil {
		t.Errorf("hw exited with %v after SIGTERM", err)
	}
	write("held.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\ndata:\n  a: \"2\"\n")
	p = node.server(t)
	node.waitControlPlane(t, p, 3*time.Minute)
	eventually(t, time.Minute, "held.yaml's change made while hw was stopped applied", func(ctx context.Context) error {
		data, err := configMapData(ctx, "default", "held")
		if err != nil || data["a"] != "2" {
			return fmt.Errorf("default/held: %v %v", data, err)
		}
		return nil
	})
}
