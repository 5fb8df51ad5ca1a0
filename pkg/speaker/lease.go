package speaker

// The speaker's Lease: for `metallb status` only (liveness is
// memberlist's), with the BGP sessions on it and, on one of them, the
// membership; written on change, renewed seldom.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/microk8s-metallb/metallb/pkg/bfd"
	"github.com/microk8s-metallb/metallb/pkg/bgp"
)

// LeasePerMember scales the renewals of a speaker that does not publish
// the membership: every max(LeaseRenew, members × LeasePerMember), so that
// all of them together write about once every LeasePerMember however many
// nodes there are (100 nodes: one renewal each 200 s, 0.6 writes/s in all
// with the publisher's).
const LeasePerMember = 2 * time.Second

// MembersAnnotation, on the Lease of the speaker that publishes the
// membership (the lowest node name among the live speakers), lists the
// speakers alive as the gossip sees them, comma-separated: `metallb status`
// learns from it which speakers live, within a second of a change, without
// every speaker renewing its Lease often.
const MembersAnnotation = "metallb.io/speakers-alive"

// leaseState is what a Lease write publishes; a change of it (not of the
// prefix counts) is written within a second.
type leaseState struct {
	alive    string // MembersAnnotation's value ("" unless this speaker publishes)
	sessions string // the sessions' peers and states, without prefix counts
}

// renewLease keeps this speaker's Lease fresh, for `metallb status`: it
// shows the speaker runs, with its BGP sessions and, on the publisher's,
// the membership. It writes when what it publishes changed (checked each
// second), and otherwise when the renewal is due: every LeaseRenew for the
// publisher, more seldom for the others (renewEvery).
func (s *Speaker) renewLease(ctx context.Context) {
	leases := s.o.Client.CoordinationV1().Leases(s.o.Namespace)
	name := leasePrefix + s.o.NodeName
	t := time.NewTicker(min(time.Second, s.o.LeaseRenew))
	defer t.Stop()
	var cur *coordinationv1.Lease // last written: one Update per renewal
	var wrote time.Time
	var last leaseState
	for {
		st, every := s.leaseState(), s.renewEvery()
		if cur == nil || st != last || time.Since(wrote) >= every {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var err error
			if cur == nil {
				cur, err = leases.Get(rctx, name, metav1.GetOptions{})
			}
			now := metav1.NewMicroTime(time.Now())
			duration := ptr.To(int32(3 * every / time.Second))
			switch {
			case apierrors.IsNotFound(err):
				l := &coordinationv1.Lease{
					ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/component": "speaker"}},
					Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(s.o.NodeName), RenewTime: &now, LeaseDurationSeconds: duration},
				}
				s.publish(l, st)
				cur, err = leases.Create(rctx, l, metav1.CreateOptions{})
			case err == nil:
				next := cur.DeepCopy()
				next.Spec.RenewTime, next.Spec.LeaseDurationSeconds = &now, duration
				s.publish(next, st)
				cur, err = leases.Update(rctx, next, metav1.UpdateOptions{})
			}
			cancel()
			if err != nil {
				cur = nil // read it again next time (conflict, deleted, ...)
				if ctx.Err() == nil {
					s.log.Warn("cannot renew the speaker lease", "error", err)
				}
			} else {
				wrote, last = time.Now(), st
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// members returns the membership once Run has started it (nil before).
func (s *Speaker) members() Members {
	m, _ := s.mlShared.Load().(Members)
	return m
}

// alive returns the live speakers, this one included, sorted (nil before
// the membership starts).
func (s *Speaker) alive() []string {
	ml := s.members()
	if ml == nil {
		return nil
	}
	out := []string{s.o.NodeName}
	for _, n := range ml.Known() {
		if n != s.o.NodeName && ml.Alive(n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// renewEvery is how often this speaker's Lease is renewed when nothing
// changes: LeaseRenew for the publisher of the membership (or before the
// membership starts), max(LeaseRenew, members × LeasePerMember) for the
// others.
func (s *Speaker) renewEvery() time.Duration {
	alive := s.alive()
	if len(alive) == 0 || alive[0] == s.o.NodeName {
		return s.o.LeaseRenew
	}
	return max(s.o.LeaseRenew, time.Duration(len(alive))*LeasePerMember)
}

func (s *Speaker) leaseState() leaseState {
	var st leaseState
	if alive := s.alive(); len(alive) > 0 && alive[0] == s.o.NodeName {
		st.alive = strings.Join(alive, ",")
	}
	if s.sessions != nil {
		var b strings.Builder
		for _, ss := range s.sessions() {
			fmt.Fprintf(&b, "%s %v %s\n", ss.Peer, ss.Up, ss.BFD)
		}
		st.sessions = b.String()
	}
	return st
}

// publish puts what the Lease publishes on l.
func (s *Speaker) publish(l *coordinationv1.Lease, st leaseState) {
	s.publishSessions(l)
	if s.traffic != nil {
		s.traffic.publish(l)
	}
	if st.alive == "" {
		delete(l.Annotations, MembersAnnotation)
		return
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[MembersAnnotation] = st.alive
}

// SessionsAnnotation on a speaker's Lease lists its BGP sessions, for
// `metallb status`: "peer up|down prefixes [bfd:STATE]" per line. A
// session going up or down is written within a second; the prefix counts
// ride on the renewals.
const SessionsAnnotation = "metallb.io/bgp-sessions"

func (s *Speaker) publishSessions(l *coordinationv1.Lease) {
	if s.sessions == nil {
		return
	}
	var b strings.Builder
	for _, st := range s.sessions() {
		state := "down"
		if st.Up {
			state = "up"
		}
		fmt.Fprintf(&b, "%s %s %d", st.Peer, state, st.Prefixes)
		if st.BFD != "" {
			fmt.Fprintf(&b, " bfd:%s", st.BFD)
		}
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		delete(l.Annotations, SessionsAnnotation)
		return
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[SessionsAnnotation] = b.String()
}

// withBFD adds each BFD session's state to the BGP session of its peer.
func withBFD(sessions []bgp.SessionState, bfds []bfd.Status) []bgp.SessionState {
	state := map[string]string{}
	for _, b := range bfds {
		state[b.Peer.String()] = strings.ToLower(b.State.String())
	}
	for i := range sessions {
		sessions[i].BFD = state[sessions[i].Peer]
	}
	return sessions
}
