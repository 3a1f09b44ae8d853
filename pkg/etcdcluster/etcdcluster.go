// Package etcdcluster manages the membership of hw's embedded etcd: a server
// joins as a learner and is promoted once it has caught up, a restarted
// server finds its own member again, and a server whose Node is deleted
// leaves.
//
// A learner does not vote, so adding one never costs the cluster its quorum,
// and etcd allows one learner at a time: a second server joining at the same
// moment waits for the first instead of failing.
package etcdcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
)

// Client opens a client to endpoints with the server's etcd client TLS.
func Client(endpoints []string, tlsConfig *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: endpoints, TLS: tlsConfig, DialTimeout: 5 * time.Second,
		Logger: zap.NewNop(),
	})
}

// retry is how joins wait for a busy or quorum-less cluster.
var retry = wait.Backoff{Duration: time.Second, Factor: 1.5, Cap: 15 * time.Second, Steps: 1 << 30}

// Join adds this server (name, peerURL) to the cluster as a learner and
// returns etcd's initial-cluster setting for it. If a member of that name
// and peer URL was added but never started (an earlier join that stopped
// halfway), it is used. A name or peer URL held by another member is
// refused. While another server joins, or the cluster has no quorum, it
// waits and says so.
func Join(ctx context.Context, c *clientv3.Client, name, peerURL string) (string, error) {
	log := klog.FromContext(ctx)
	var initial string
	attempt := 0
	err := wait.ExponentialBackoffWithContext(ctx, retry, func(ctx context.Context) (bool, error) {
		attempt++
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		list, err := c.MemberList(callCtx)
		if err != nil {
			log.Info("etcd cluster not answering (no quorum, or the server is still starting); retrying", "attempt", attempt, "err", err.Error())
			return false, nil
		}
		members := list.Members
		var self *etcdserverpb.Member
		for _, m := range members {
			holdsURL := slices.Contains(m.PeerURLs, peerURL)
			switch {
			case m.Name == name && !holdsURL:
				return false, fmt.Errorf("a member named %s already exists (peer %s): the node name belongs to another server; choose another --node-name, or if that machine is gone, 'kubectl delete node %s' first", name, strings.Join(m.PeerURLs, ","), name)
			case holdsURL && m.Name != "" && m.Name != name:
				return false, fmt.Errorf("member %s already uses this server's peer address %s: if that server is gone, 'kubectl delete node %s' first", m.Name, peerURL, m.Name)
			case holdsURL && m.Name == name:
				return false, fmt.Errorf("a started member %s at %s exists already, but this server has no etcd data: if this machine replaces it, 'kubectl delete node %s' first", name, peerURL, name)
			case holdsURL:
				self = m // added before, never started
			}
		}
		if self == nil {
			added, err := c.MemberAddAsLearner(callCtx, []string{peerURL})
			if err != nil {
				if errors.Is(rpctypes.Error(err), rpctypes.ErrTooManyLearners) {
					log.Info("Another server is joining etcd; waiting for it to finish", "attempt", attempt)
					return false, nil
				}
				log.Info("Adding this server to etcd failed; retrying", "attempt", attempt, "err", err.Error())
				return false, nil
			}
			self, members = added.Member, added.Members
			log.Info("Added this server to etcd as a learner", "member", fmt.Sprintf("%x", self.ID))
		}
		initial = InitialCluster(members, self.ID, name)
		return true, nil
	})
	return initial, err
}

// InitialCluster is etcd's initial-cluster setting for the new member id
// (named name) among members: every started member and itself.
func InitialCluster(members []*etcdserverpb.Member, id uint64, name string) string {
	var parts []string
	for _, m := range members {
		n := m.Name
		if m.ID == id {
			n = name
		}
		if n == "" {
			continue // another member added but not started: it cannot help us start
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

// Promote makes the learner named name a voting member, retrying while it
// catches up. A member that votes already is left as it is.
func Promote(ctx context.Context, c *clientv3.Client, name string) error {
	log := klog.FromContext(ctx)
	attempt := 0
	return wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Cap: 5 * time.Second, Steps: 1 << 30}, func(ctx context.Context) (bool, error) {
		attempt++
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		list, err := c.MemberList(callCtx)
		if err != nil {
			log.Info("etcd cluster not answering; retrying the promotion", "attempt", attempt, "err", err.Error())
			return false, nil
		}
		var self *etcdserverpb.Member
		for _, m := range list.Members {
			if m.Name == name {
				self = m
			}
		}
		if self == nil {
			return false, fmt.Errorf("this server (%s) is no longer an etcd member: it was removed (its Node deleted?); start hw again with --server pointing at a live server: it keeps its old etcd data aside and joins afresh", name)
		}
		if !self.IsLearner {
			return true, nil
		}
		if _, err := c.MemberPromote(callCtx, self.ID); err != nil {
			if errors.Is(rpctypes.Error(err), rpctypes.ErrMemberLearnerNotReady) {
				log.V(1).Info("Learner still catching up", "attempt", attempt)
			} else {
				log.Info("Promoting this server in etcd failed; retrying", "attempt", attempt, "err", err.Error())
			}
			return false, nil
		}
		log.Info("This server is a voting etcd member now", "member", fmt.Sprintf("%x", self.ID))
		return true, nil
	})
}

// ErrOnlyMember is Remove's answer for the cluster's last member.
var ErrOnlyMember = errors.New("the cluster's only etcd member stays")

// Remove removes the member named name; it reports whether there was one.
func Remove(ctx context.Context, c *clientv3.Client, name string) (bool, error) {
	list, err := c.MemberList(ctx)
	if err != nil {
		return false, err
	}
	for _, m := range list.Members {
		if m.Name == name {
			if len(list.Members) == 1 {
				return false, ErrOnlyMember
			}
			if _, err := c.MemberRemove(ctx, m.ID); err != nil {
				return false, err
			}
			return true, nil
		}
	}
	return false, nil
}

// Health is how many members answer, of how many.
type Health struct {
	Reachable, Members int
}

func (h Health) String() string {
	return fmt.Sprintf("%d of %d etcd members reachable", h.Reachable, h.Members)
}

// Quorum reports whether a majority answers.
func (h Health) Quorum() bool { return h.Reachable > h.Members/2 }

// Check asks every member for its status.
func Check(ctx context.Context, c *clientv3.Client) (Health, error) {
	list, err := c.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return Health{}, err
	}
	h := Health{Members: len(list.Members)}
	for _, m := range list.Members {
		for _, u := range m.ClientURLs {
			callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := c.Status(callCtx, u)
			cancel()
			if err == nil {
				h.Reachable++
				break
			}
		}
	}
	return h, nil
}
