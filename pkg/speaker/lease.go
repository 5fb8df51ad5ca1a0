package speaker

// The speaker's Lease: for `metallb status` only (liveness is
// memberlist's), renewed every LeaseRenew with the BGP sessions on it.

import (
	"context"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/microk8s-metallb/metallb/pkg/bfd"
	"github.com/microk8s-metallb/metallb/pkg/bgp"
)

// renewLease keeps this speaker's Lease fresh, for `metallb status`: it
// shows the speaker runs, with its BGP sessions.
func (s *Speaker) renewLease(ctx context.Context) {
	leases := s.o.Client.CoordinationV1().Leases(s.o.Namespace)
	name := leasePrefix + s.o.NodeName
	t := time.NewTicker(s.o.LeaseRenew)
	defer t.Stop()
	var cur *coordinationv1.Lease // last written: one Update per renewal
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		if cur == nil {
			cur, err = leases.Get(rctx, name, metav1.GetOptions{})
		}
		now := metav1.NewMicroTime(time.Now())
		switch {
		case apierrors.IsNotFound(err):
			l := &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/component": "speaker"}},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: ptr.To(s.o.NodeName), RenewTime: &now,
					LeaseDurationSeconds: ptr.To(int32(3 * s.o.LeaseRenew / time.Second)),
				},
			}
			s.publishSessions(l)
			cur, err = leases.Create(rctx, l, metav1.CreateOptions{})
		case err == nil:
			next := cur.DeepCopy()
			next.Spec.RenewTime = &now
			next.Spec.LeaseDurationSeconds = ptr.To(int32(3 * s.o.LeaseRenew / time.Second))
			s.publishSessions(next)
			cur, err = leases.Update(rctx, next, metav1.UpdateOptions{})
		}
		cancel()
		if err != nil {
			cur = nil // read it again next time (conflict, deleted, ...)
			if ctx.Err() == nil {
				s.log.Warn("cannot renew the speaker lease", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SessionsAnnotation on a speaker's Lease lists its BGP sessions, for
// `metallb status`: "peer up|down prefixes [bfd:STATE]" per line. It
// rides on the renewals, so it costs no write of its own.
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
