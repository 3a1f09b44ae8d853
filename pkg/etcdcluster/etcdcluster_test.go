package etcdcluster

import (
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

func TestInitialClusterNamesTheNewMemberAndSkipsUnstartedOthers(t *testing.T) {
	members := []*etcdserverpb.Member{
		{ID: 1, Name: "server1", PeerURLs: []string{"https://10.0.0.1:2380"}},
		{ID: 2, Name: "", PeerURLs: []string{"https://10.0.0.2:2380"}}, // the new one, unnamed until it starts
		{ID: 3, Name: "", PeerURLs: []string{"https://10.0.0.3:2380"}}, // another, added but not started
	}
	got := InitialCluster(members, 2, "server2")
	want := "server1=https://10.0.0.1:2380,server2=https://10.0.0.2:2380"
	if got != want {
		t.Errorf("InitialCluster = %q, want %q", got, want)
	}
}

func TestQuorum(t *testing.T) {
	for _, c := range []struct {
		h    Health
		want bool
	}{{Health{3, 3}, true}, {Health{2, 3}, true}, {Health{1, 3}, false}, {Health{1, 1}, true}, {Health{1, 2}, false}} {
		if c.h.Quorum() != c.want {
			t.Errorf("%s: quorum %v", c.h, !c.want)
		}
	}
}

// /readyz names the members that answer while there is no quorum, and is
// quiet before the first look and with a quorum.
func TestReadyzCheckNamesTheMembers(t *testing.T) {
	w := &QuorumWatch{}
	check := w.ReadyzCheck()
	if check.Name() != "etcd-members" || check.Check(nil) != nil {
		t.Fatalf("before any look: %s %v", check.Name(), check.Check(nil))
	}
	w.last = Health{Reachable: 2, Members: 3}
	if err := check.Check(nil); err != nil {
		t.Errorf("with a quorum: %v", err)
	}
	w.last = Health{Reachable: 1, Members: 3}
	if err := check.Check(nil); err == nil || err.Error() != "no quorum: 1 of 3 etcd members reachable" {
		t.Errorf("without a quorum: %v", err)
	}
}
