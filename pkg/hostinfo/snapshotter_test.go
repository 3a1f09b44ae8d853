package hostinfo

import "testing"

func TestSnapshotterFallsBackWithoutOverlay(t *testing.T) {
	withOverlay := "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n"
	without := "nodev\tsysfs\nnodev\ttmpfs\n\text4\n"
	if !overlayListed(withOverlay) || overlayListed(without) {
		t.Fatalf("overlayListed: with=%v without=%v", overlayListed(withOverlay), overlayListed(without))
	}
	for _, tc := range []struct {
		choice  string
		overlay bool
		want    string
	}{
		{"", true, "overlayfs"},
		{"", false, "native"},
		{"native", true, "native"},
	} {
		if got := Snapshotter(tc.choice, tc.overlay); got != tc.want {
			t.Errorf("Snapshotter(%q, overlay=%v) = %q, want %q", tc.choice, tc.overlay, got, tc.want)
		}
	}
}
