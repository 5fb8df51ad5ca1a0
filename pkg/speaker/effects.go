package speaker

// The loop's work: plan, and carry the plan out through the announcers,
// the membership, metrics and Events.

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/bgp"
)

// HandOffTimeout bounds how long a stopping speaker waits for its goodbye to
// be gossiped.
const HandOffTimeout = 300 * time.Millisecond

// reconcile plans and applies the announcements; it returns when to plan
// again at the latest (0: only on a change).
func (s *Speaker) reconcile() time.Duration {
	defer s.updateReadiness()
	s.sync()
	env := s.env()
	env.Resend, s.resend = s.resend, false
	s.setIsolated(env.Isolated)
	env.Withdraw = env.Isolated && s.apiDown
	p := s.core.Plan(env)
	if s.ml != nil {
		s.m.members.Set(float64(s.ml.Peers() + 1))
	}

	// Stop answering first, then tell the new owners: never two at once.
	s.l2.UpdateClaims(p.Claim, p.Unclaim)
	for _, r := range p.Releases {
		s.log.Debug("releasing addresses to their new owner", "to", r.To, "ips", fmt.Sprint(r.IPs))
		s.ml.Release(r.To, r.IPs)
	}
	for _, ip := range p.Forced {
		s.log.Warn("announcing without a release: the previous owner did not hand the address over in time", "ip", ip, "waited", announce.HandOverTimeout)
	}
	s.logWaiting(p.Waiting)

	// BGP does not depend on the memberlist: routers see the sessions
	// themselves, and an outage must not withdraw every route.
	s.peers = s.withPasswords(p.Peers)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := s.bgp.Update(ctx, p.RouterID, s.peers, p.Advertise, p.Withdraw)
	cancel()
	if msg := fmt.Sprint(err); err != nil && msg != s.bgpErr {
		s.log.Error("BGP", "error", err)
		s.bgpErr = msg
	} else if err == nil {
		s.bgpErr = ""
	}

	s.showState()
	if s.l2status != nil {
		for _, key := range p.Layer2Changed {
			st, ok := wantedL2Status(s.core.Layer2Of(key))[key]
			s.l2status.update(key, st, ok)
		}
		s.l2status.plannedOnce()
	}
	if s.bgpstatus != nil {
		for _, key := range p.BGPChanged {
			peers := s.core.BGPPeersOf(key)
			ns, name, _ := strings.Cut(key, "/")
			s.bgpstatus.update(key, svcStatus{Namespace: ns, Name: name, Items: peers}, len(peers) > 0)
		}
		s.bgpstatus.plannedOnce()
	}
	for _, a := range p.Added {
		s.m.announced.WithLabelValues(a.Service, s.o.NodeName, a.IP.String(), string(a.Protocol)).Set(1)
		if s.traffic != nil {
			s.traffic.announced.Add(a.Service, string(a.Protocol), a.IP)
		}
		if obj := s.service(a.Service); obj != nil {
			s.recorder.Eventf(obj, corev1.EventTypeNormal, ReasonAssigned, "announcing from node %q with protocol %q", s.o.NodeName, a.Protocol)
		}
	}
	for _, a := range p.Removed {
		s.m.announced.DeleteLabelValues(a.Service, s.o.NodeName, a.IP.String(), string(a.Protocol))
		if s.traffic != nil {
			s.traffic.announced.Remove(a.Service, string(a.Protocol), a.IP)
		}
	}
	if s.traffic != nil {
		s.traffic.announced.Planned()
	}
	return p.Recheck
}

// showState gives the ConfigurationState speaker-NODE this speaker's
// verdict when it changed: Valid when it runs on the whole accepted
// configuration; Invalid when it cannot read the accepted copy (it keeps
// the last one it read) or leaves a BGP peer out (its password Secret).
func (s *Speaker) showState() {
	if s.state == nil {
		return
	}
	var reasons []string
	if err := s.watcher.Refused(); err != nil {
		reasons = append(reasons, "this speaker cannot read the accepted configuration and runs on the last one it read: "+err.Error())
	}
	for _, k := range slices.Sorted(maps.Keys(s.secrets.problems)) {
		reasons = append(reasons, "no BGP session with peer "+k+": "+s.secrets.problems[k])
	}
	verdict := strings.Join(reasons, "; ")
	if verdict == s.shown && s.shownOnce {
		return
	}
	s.shown, s.shownOnce = verdict, true
	s.state.SetState(verdict == "", verdict)
}

// setIsolated records whether this speaker sees none of the peers it
// knew; each new isolation is numbered and sent to watchAPI, which then
// checks the API server until the isolation ends.
func (s *Speaker) setIsolated(isolated bool) {
	if isolated == s.isolated {
		return
	}
	s.isolated, s.apiDown, s.episode = isolated, false, 0
	if isolated {
		s.episodes++
		s.episode = s.episodes
	}
	select { // the latest only: drop what watchAPI has not read
	case <-s.isoCh:
	default:
	}
	s.isoCh <- s.episode
}

// logWaiting says which addresses wait for their previous owner, once.
func (s *Speaker) logWaiting(waiting map[netip.Addr]string) {
	for ip, from := range waiting {
		if s.waitLog[ip] != from {
			s.log.Info("waiting for the previous owner to release the address", "ip", ip, "from", from)
		}
	}
	s.waitLog = waiting
}

// updateReadiness makes /readyz fail while an address this node announces
// has no working responder (its interface went down or away), and says so
// once per change.
func (s *Speaker) updateReadiness() {
	if s.o.Metrics == nil {
		return
	}
	lost := s.l2.Unanswered()
	ready := len(lost) == 0
	changed := ready != s.ready
	s.ready = ready
	if changed && !ready {
		s.log.Warn("not ready: announced addresses have no working responder", "ip", fmt.Sprint(lost))
	} else if changed {
		s.log.Info("ready: every announced address has a working responder")
	}
	s.o.Metrics.SetReady(ready)
}

// conflict decides about another MAC answering for an address this node
// announces: the rightful owner says so again (and raises an Event); a
// speaker cut off from its peers yields it.
func (s *Speaker) conflict(ev evConflict) {
	var known []string
	if s.ml != nil {
		known = s.ml.Known()
	}
	switch s.core.Conflict(ev.ip, s.o.NodeName, s.isolated, known) {
	case announce.Ignore:
		return
	case announce.Yield:
		s.log.Warn("cut off from the other speakers and another host announces the address: yielding it",
			"ip", ev.ip, "interface", ev.ifname, "mac", ev.mac.String())
		return
	}
	// The rightful owner: say so again, so that clients which believed the
	// other host come back.
	s.l2.Reassert(ev.ip)
	s.m.conflicts.WithLabelValues(ev.ip.String()).Inc()
	for _, a := range s.core.AnnouncedAt(ev.ip) {
		if obj := s.service(a.Service); obj != nil {
			s.recorder.Eventf(obj, corev1.EventTypeWarning, ReasonConflict,
				"another host (MAC %s) answers for %s on %s of node %q: two machines claim this address; find it with arping and remove the address from it",
				ev.mac, ev.ip, ev.ifname, s.o.NodeName)
		}
	}
}

// gracefulPeers reports whether a session of the last plan uses graceful
// restart.
func (s *Speaker) gracefulPeers() bool {
	return slices.ContainsFunc(s.peers, func(p bgp.Peer) bool { return p.GracefulRestart })
}

// handOff passes this node's layer2 addresses on before it stops: it stops
// answering, releases each address to its next owner (which announces it
// at once, with a gratuitous ARP / unsolicited NA), and says goodbye, so
// that the others stop counting on it without waiting to find it dead. A
// rolling update leaves no address to a second MAC, and unanswered only for
// the time a datagram takes. The Lease goes too: `metallb status` then
// shows the speaker stopped rather than late.
func (s *Speaker) handOff() {
	var drop []netip.Addr
	for _, c := range s.core.Claims() {
		drop = append(drop, c.IP)
	}
	if s.ml == nil {
		s.l2.UpdateClaims(nil, drop)
		return
	}
	s.sync()
	rel := s.core.Leave(s.o.NodeName)
	s.l2.UpdateClaims(nil, drop)
	n := 0
	for _, r := range rel {
		s.ml.Release(r.To, r.IPs)
		n += len(r.IPs)
	}
	start := time.Now()
	s.ml.Leave(HandOffTimeout)
	s.log.Info("handed the addresses over and left", "addresses", n, "took", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.o.Client.CoordinationV1().Leases(s.o.Namespace).Delete(ctx, leasePrefix+s.o.NodeName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		s.log.Debug("cannot delete the speaker Lease", "error", err)
	}
}
