package members

// Certain evidence of a dead speaker. When a speaker's process dies but
// its node lives (a crash, an OOM kill, a SIGKILL: the commonest failure),
// the node's kernel answers a TCP connection to the speaker's port with a
// reset at once, for no socket listens there any more. memberlist probes a
// peer by UDP and, when no ack came within ProbeTimeout, also by TCP (its
// fallback ping); a refused fallback ping is proof, not suspicion: this
// speaker marks the peer dead at once instead of waiting out the
// suspicion (SuspicionMult), so its addresses move about 0.2 s sooner.
//
// Only the fallback ping counts: it is dialled only after a UDP ping went
// unanswered, with the probe's deadline as its timeout (well under
// TCPTimeout, which every other stream connection uses). A firewall that
// rejects TCP but lets UDP through never gets that far (the UDP pings are
// answered), and a slow but live speaker still has its listener: the
// kernel accepts or queues the connection, it does not refuse it. A dead
// node refuses nothing: it stays silent, and memberlist's suspicion decides
// as before.
//
// A speaker probes a given peer only once per round over all of them (at
// 100 nodes, every 10 s), so the one that finds the refusal tells the
// others, with a signed check message naming the dead speaker's address.
// The message is a hint, not a verdict: each receiver dials that address
// itself (once a second at most per peer) and marks the peer dead only on
// its own refusal; a forged or stale hint costs one connection attempt.

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// evidenceTransport is memberlist's NetTransport, watching the fallback
// pings it dials.
type evidenceTransport struct {
	*memberlist.NetTransport
	probeBelow time.Duration // a dial with a shorter timeout is a fallback ping
	refused    func(name string)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *evidenceTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil && timeout < t.probeBelow && a.Name != "" && errors.Is(err, syscall.ECONNREFUSED) {
		t.refused(a.Name)
	}
	return c, err
}

// checkTimeout bounds the dial a check hint makes: a live speaker's node
// accepts at once on a LAN, a refusal is as fast.
const checkTimeout = 200 * time.Millisecond

// refused marks a peer whose node refused the fallback ping dead at once
// and tells the other peers to check it.
func (l *List) refused(name string) {
	if addr, ok := l.markRefused(name); ok {
		l.o.Log.Warn("speaker dead: its node refused the connection (no process listens on its port)", "peer", name)
		l.o.OnChange(false)
		l.tellCheck(name, addr)
	}
}

// markRefused records the refusal. It holds for that start of the speaker
// (its boot ID): a new start (NotifyUpdate) or memberlist seeing it alive
// again after a death (NotifyJoin) ends it; a rejoin's resync does not. It
// returns the peer's address when the peer was alive until now.
func (l *List) markRefused(name string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.alive[name] {
		return "", false
	}
	l.refusedBoot[name] = l.peers[name].boot
	l.alive[name] = false
	return l.addrs[name], true
}

// tellCheck sends every other live peer a check hint for the speaker at
// addr (best effort: a lost one leaves that peer to its own probes).
func (l *List) tellCheck(dead, addr string) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return
	}
	msg := l.message(msgCheck, []netip.Addr{ap.Addr()})
	for _, n := range l.ml.Members() {
		if n.Name != l.o.Name && n.Name != dead && l.Alive(n.Name) {
			_ = l.ml.SendBestEffort(n, msg)
		}
	}
}

// checkHint dials the live peer at ip (a check hint named it) and marks
// it dead if its node refuses.
func (l *List) checkHint(ip netip.Addr) {
	l.mu.Lock()
	var name, addr string
	for n, a := range l.addrs {
		if ap, err := netip.ParseAddrPort(a); err == nil && ap.Addr() == ip && l.alive[n] {
			name, addr = n, a
		}
	}
	if name == "" || time.Since(l.checked[name]) < time.Second {
		l.mu.Unlock()
		return
	}
	l.checked[name] = time.Now()
	l.mu.Unlock()
	go l.dialCheck(name, addr)
}

// dialCheck dials a peer's memberlist port: a refusal marks it dead.
func (l *List) dialCheck(name, addr string) {
	d := net.Dialer{Timeout: checkTimeout, LocalAddr: &net.TCPAddr{IP: l.o.Bind.AsSlice()}}
	c, err := d.Dial("tcp", addr)
	if err == nil {
		c.Close()
		return // alive: the hint was stale, or forged
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		if _, ok := l.markRefused(name); ok {
			l.o.Log.Warn("speaker dead: its node refused the connection (checked on a peer's word)", "peer", name)
			l.o.OnChange(false)
		}
	}
}
