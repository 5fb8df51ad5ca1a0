package speaker

// Which speakers are alive (memberlist), and, when this one sees none of
// them, whether it still reaches the API server.

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/members"
)

// Isolation: a speaker that sees none of the peers it knew checks the API
// server this often; unreachable, it withdraws its layer2 addresses.
const (
	apiCheckInterval = 250 * time.Millisecond
	apiCheckTimeout  = 500 * time.Millisecond
	rejoinInterval   = 5 * time.Second
)

// settleTimeout bounds how long a starting speaker looks for the speakers
// of the other Ready nodes before its first plan.
const settleTimeout = 2 * time.Second

// startMembers starts memberlist on the node's address; its callbacks
// queue events for the loop.
func (s *Speaker) startMembers() (Members, error) {
	bind := s.o.BindAddr
	if !bind.IsValid() {
		for _, n := range s.nodeList() {
			if n.Name == s.o.NodeName && len(n.Addrs) > 0 {
				bind = n.Addrs[0]
			}
		}
	}
	if !bind.IsValid() {
		return nil, fmt.Errorf("node %q has no InternalIP to listen on for the other speakers: set --memberlist-bind (the DaemonSet sets $METALLB_HOST_IP)", s.o.NodeName)
	}
	return s.o.StartMembers(members.Options{
		Name: s.o.NodeName, Bind: bind, Port: s.o.Port, Key: s.o.Key, Log: s.log.With("component", "memberlist"),
		OnChange: func(joined bool) {
			if joined {
				s.inbox.push(evJoined{})
			} else {
				s.inbox.poke()
			}
		},
		OnRelease: func(from string, ips []netip.Addr) {
			s.inbox.push(evReleased{from: from, ips: ips, at: time.Now()})
		},
	})
}

// settle joins the speakers of the other Ready nodes (they listen on their
// node's address: the speaker runs in each node's host network) before the
// first plan: a speaker that saw nobody would think every address its own,
// and speakers of a fresh install start together. It returns once every
// Ready node's speaker is a member, or after settleTimeout (a node without
// a speaker, or a dead one).
func (s *Speaker) settle(ctx context.Context, ml Members) {
	missing := func() []netip.Addr {
		var addrs []netip.Addr
		for _, n := range s.nodeList() {
			if n.Name != s.o.NodeName && n.Ready && len(n.Addrs) > 0 && !ml.Alive(n.Name) {
				addrs = append(addrs, n.Addrs[0])
			}
		}
		return addrs
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		addrs := missing()
		if len(addrs) == 0 {
			return
		}
		ml.Join(addrs)
		if addrs = missing(); len(addrs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.log.Info("starting without the speakers of some nodes", "addresses", fmt.Sprint(addrs))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rejoin contacts, now and then, the nodes whose speaker is not a member
// (it started after us, or came back after a partition), and forgets the
// peers whose node is gone.
func (s *Speaker) rejoin(ctx context.Context, ml Members) {
	t := time.NewTicker(rejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var addrs []netip.Addr
		names := map[string]bool{}
		for _, n := range s.nodeList() {
			names[n.Name] = true
			if n.Name != s.o.NodeName && len(n.Addrs) > 0 && !ml.Alive(n.Name) {
				addrs = append(addrs, n.Addrs[0])
			}
		}
		for _, k := range ml.Known() {
			if !names[k] {
				ml.Forget(k)
			}
		}
		if len(addrs) > 0 {
			ml.Join(addrs)
		}
	}
}

// watchAPI checks, while this speaker is isolated from its peers, whether
// it still reaches the API server (a read, not a write), and queues each
// change. The loop sends each isolation on iso, numbered (0: in touch with
// its peers again); a new one starts from "answers". Cut off from both, a
// speaker cannot know that it is the one that is cut off, but the others
// have then taken its addresses: the loop withdraws them.
func (s *Speaker) watchAPI(ctx context.Context, iso <-chan uint64) {
	leases := s.o.Client.CoordinationV1().Leases(s.o.Namespace)
	var episode, checked uint64
	down := false
	for {
		if episode == 0 {
			// In touch with its peers: nothing to check until isolated.
			select {
			case <-ctx.Done():
				return
			case episode = <-iso:
			}
			continue
		}
		if episode != checked {
			checked, down = episode, false
		}
		rctx, cancel := context.WithTimeout(ctx, apiCheckTimeout)
		_, err := leases.Get(rctx, leasePrefix+s.o.NodeName, metav1.GetOptions{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		if nowDown := err != nil && !apierrors.IsNotFound(err); nowDown != down {
			down = nowDown
			s.inbox.push(evAPI{episode: episode, down: down, err: err})
		}
		select {
		case <-ctx.Done():
			return
		case episode = <-iso:
		case <-time.After(apiCheckInterval):
		}
	}
}

// restarting tells a stop for a restart (a rolling update: the DaemonSet
// stays) from a removal (disable deletes the DaemonSet; a speaker run
// without one is never restarted): only a restart keeps the routes at the
// routers. When the API server does not answer, a restart is likelier.
func (s *Speaker) restarting() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ds, err := s.o.Client.AppsV1().DaemonSets(s.o.Namespace).Get(ctx, s.o.DaemonSet, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false
	case err != nil:
		return true
	}
	return ds.DeletionTimestamp == nil
}
