package localpath

import (
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNewVolume(t *testing.T) {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "web", UID: "1234"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	retain := corev1.PersistentVolumeReclaimRetain
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local-path"}, ReclaimPolicy: &retain}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelHostname: "host-1"},
		Annotations: map[string]string{DirAnnotation: "/data/hw/storage"}}}

	pv := newVolume(claim, class, node)
	if pv.Name != "pvc-1234" || pv.Spec.ClaimRef.UID != "1234" || pv.Spec.StorageClassName != "local-path" {
		t.Errorf("volume %s bound to %+v class %s", pv.Name, pv.Spec.ClaimRef, pv.Spec.StorageClassName)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != retain {
		t.Errorf("reclaim %s; want the class's", pv.Spec.PersistentVolumeReclaimPolicy)
	}
	if want := "/data/hw/storage/pvc-1234_web_data"; pv.Spec.HostPath.Path != want {
		t.Errorf("path %s, want %s (the node's own folder)", pv.Spec.HostPath.Path, want)
	}
	req := pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0]
	if req.Key != corev1.LabelHostname || req.Values[0] != "host-1" {
		t.Errorf("node affinity %+v; want the node's hostname label", req)
	}
	if got := pv.Spec.Capacity[corev1.ResourceStorage]; got.String() != "1Gi" {
		t.Errorf("capacity %s", got.String())
	}

	delete(node.Annotations, DirAnnotation)
	if got := newVolume(claim, class, node).Spec.HostPath.Path; filepath.Dir(got) != DefaultDir {
		t.Errorf("a node that has not said where: %s; want under %s", got, DefaultDir)
	}
}

func TestVolumeOfDir(t *testing.T) {
	for dir, want := range map[string]string{"pvc-1234_web_data": "pvc-1234", "pvc-1_a_b_c": "pvc-1", "lost+found": "", "pvc-nounderscore": "", "other_x_y": ""} {
		got, ok := volumeOfDir(dir)
		if ok != (want != "") || got != want && ok {
			t.Errorf("%s: %q %v, want %q", dir, got, ok, want)
		}
	}
}
