// Package members tells a speaker which other speakers are alive, by
// gossip among the speakers themselves (hashicorp/memberlist, SWIM with
// Lifeguard), so liveness costs the API server nothing. It also carries
// the two messages of the layer2 hand-over: a release ("I do not answer
// for these addresses") and a goodbye ("I am stopping").
//
// Every message is encrypted and authenticated with the key of the
// memberlist Secret; the speaker listens on its node's address only. The
// hand-over messages are also signed by their sender's key of this start
// and carry a counter (message.go), so neither a replayed datagram nor a
// speaker speaking for another node changes anything.
//
// A speaker whose node refuses the TCP probe of its port (the process is
// gone, the node lives) is dead at once, on that evidence (evidence.go).
package members

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/microk8s-metallb/metallb/pkg/logging"
)

// DefaultPort is memberlist's usual port (TCP and UDP).
const DefaultPort = 7946

// Timing: a dead speaker is detected in about 0.3 s (a probe every 100 ms,
// 40 ms to answer, indirect probes through the others, then 200 ms of
// suspicion during which a slow but live speaker refutes). Gossip (only
// when there is news: a suspicion, a death, a join) goes out every 100 ms;
// every speaker that hears a suspicion runs its own timer, so it does not
// wait for the news of the death.
const (
	ProbeInterval  = 100 * time.Millisecond
	ProbeTimeout   = 40 * time.Millisecond
	SuspicionMult  = 2
	GossipInterval = 100 * time.Millisecond
)

// Options configure the membership.
type Options struct {
	Name string     // the node name
	Bind netip.Addr // the node's address
	Port int        // 0: DefaultPort
	// Key encrypts and authenticates every message: what Key derives from
	// the Secret (16, 24 or 32 bytes). Empty: plain text.
	Key []byte
	Log *slog.Logger
	// OnChange is called (quickly, without blocking) when the membership
	// changes; joined when a speaker joined or restarted.
	OnChange func(joined bool)
	// OnRelease is called when speaker from releases ips to this one.
	OnRelease func(from string, ips []netip.Addr)
}

// List is the membership as this speaker sees it.
type List struct {
	o   Options
	ml  *memberlist.Memberlist
	id  identity           // published in the metadata
	key ed25519.PrivateKey // signs this start's messages
	seq atomic.Uint64      // the counter of the last message sent
	bad *logging.Throttle  // rejected messages, logged once a minute

	mu      sync.Mutex
	alive   map[string]bool // peers alive (not this node)
	known   map[string]bool // peers seen, alive or dead, not those that left
	addrs   map[string]string
	peers   map[string]identity // what each peer publishes now
	windows map[string]*window  // the counters seen from each peer
	// refusedBoot: the start (boot ID) of each peer whose node refused a
	// fallback ping (evidence.go), dead until it starts again.
	refusedBoot map[string]string
	checked     map[string]time.Time // when each peer was last dialled on a hint
}

// Key derives the memberlist key from the Secret's value: the decoded
// bytes when it is base64 of 16, 24 or 32 bytes, else the SHA-256 of it.
func Key(secret string) []byte {
	if secret == "" {
		return nil
	}
	if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(secret)); err == nil && (len(b) == 16 || len(b) == 24 || len(b) == 32) {
		return b
	}
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Start joins nobody yet: Join does.
func Start(o Options) (*List, error) {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	boot := make([]byte, 8)
	if _, err := io.ReadFull(rand.Reader, boot); err != nil {
		return nil, fmt.Errorf("boot ID: %w", err)
	}
	l := &List{o: o, id: identity{boot: hex.EncodeToString(boot), pub: pub}, key: priv,
		bad:   logging.NewThrottle(time.Minute, nil),
		alive: map[string]bool{}, known: map[string]bool{}, addrs: map[string]string{},
		peers: map[string]identity{}, windows: map[string]*window{}, refusedBoot: map[string]string{}, checked: map[string]time.Time{}}
	c := memberlist.DefaultLANConfig()
	c.Name = o.Name
	c.BindAddr, c.BindPort = o.Bind.String(), o.Port
	c.AdvertiseAddr, c.AdvertisePort = o.Bind.String(), o.Port
	c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = ProbeInterval, ProbeTimeout, SuspicionMult
	c.GossipInterval, c.GossipToTheDeadTime = GossipInterval, 5*time.Second
	c.IndirectChecks = 2
	c.TCPTimeout = time.Second
	c.PushPullInterval = 15 * time.Second
	// Messages are a few hundred bytes on a LAN: LZW saves little and, with
	// a table allocated per message, was most of a member's CPU and garbage
	// at 100 members. Members still read compressed messages (older speakers
	// during a rolling update).
	c.EnableCompression = false
	c.Events = l
	c.Delegate = delegate{l}
	c.Logger = log.New(newLogWriter(o.Log), "", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{c.BindAddr}, BindPort: c.BindPort, Logger: c.Logger})
	if err != nil {
		return nil, fmt.Errorf("memberlist on %s port %d: %w", o.Bind, o.Port, err)
	}
	c.Transport = &evidenceTransport{NetTransport: nt, probeBelow: c.TCPTimeout, refused: l.refused}
	if len(o.Key) > 0 {
		c.SecretKey = o.Key // memberlist.Create refuses another length
	} else {
		o.Log.Warn("memberlist traffic is not encrypted: no key (the memberlist Secret sets $METALLB_ML_SECRET_KEY)")
	}
	ml, err := memberlist.Create(c)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("memberlist on %s port %d: %w", o.Bind, o.Port, err)
	}
	l.ml = ml
	return l, nil
}

// Join contacts the speakers at addrs (node addresses, with or without a
// port) that are not members yet, each in parallel; it returns when every
// attempt is done, with the peers' states read again from memberlist.
func (l *List) Join(addrs []netip.Addr) {
	l.mu.Lock()
	have := map[string]bool{}
	for name, a := range l.addrs {
		if l.alive[name] {
			have[a] = true
		}
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range addrs {
		if a == l.o.Bind {
			continue
		}
		hp := net.JoinHostPort(a.String(), strconv.Itoa(l.o.Port))
		if have[hp] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.ml.Join([]string{hp}); err != nil {
				l.o.Log.Debug("no speaker joined", "address", hp, "error", err)
			}
		}()
	}
	wg.Wait()
	l.resync()
}

// resync sets alive from memberlist's own member states: whatever a lost
// or forged message made this speaker believe, a peer memberlist holds
// alive (or only suspect) counts as alive again at the next rejoin.
func (l *List) resync() {
	members := l.ml.Members() // not from a memberlist callback: it holds the lock this takes
	l.mu.Lock()
	now := map[string]bool{}
	changed := false
	for _, n := range members {
		if n.Name == l.o.Name || (n.State != memberlist.StateAlive && n.State != memberlist.StateSuspect) {
			continue
		}
		if boot, ok := l.refusedBoot[n.Name]; ok && boot == bootOf(n) {
			continue // its node refused it: dead, whatever memberlist still thinks
		}
		now[n.Name] = true
		if !l.alive[n.Name] {
			changed = true
			l.markLocked(n)
		}
	}
	for name, a := range l.alive {
		if a && !now[name] {
			l.alive[name] = false
		}
	}
	l.mu.Unlock()
	if changed {
		l.o.Log.Info("speakers alive again after a rejoin", "peers", len(now))
		l.o.OnChange(true)
	}
}

// Alive reports whether the speaker of node is alive (this node is).
func (l *List) Alive(node string) bool {
	if node == l.o.Name {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.alive[node]
}

// Peers returns the number of other speakers alive.
func (l *List) Peers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.alive {
		if a {
			n++
		}
	}
	return n
}

// Known returns the peers seen, alive or dead, except those that left.
func (l *List) Known() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.known))
	for n := range l.known {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Forget drops a peer whose node is gone from the cluster.
func (l *List) Forget(node string) {
	l.mu.Lock()
	delete(l.known, node)
	delete(l.windows, node)
	l.mu.Unlock()
}

// Message kinds.
const (
	msgRelease = 'R'
	msgBye     = 'B'
	msgCheck   = 'C' // "the speaker at this address looks dead: see for yourself" (evidence.go)
)

// Release tells node that this speaker does not answer for ips: at once
// by UDP, and again by TCP in case the datagram is lost.
func (l *List) Release(node string, ips []netip.Addr) {
	l.send(node, l.message(msgRelease, ips))
}

// message seals a message of this speaker with the next counter.
func (l *List) message(kind byte, ips []netip.Addr) []byte {
	return seal(message{kind: kind, from: l.o.Name, boot: l.id.boot, seq: l.seq.Add(1), ips: ips}, l.key)
}

func (l *List) send(node string, msg []byte) {
	to := l.member(node)
	if to == nil {
		return
	}
	if err := l.ml.SendBestEffort(to, msg); err != nil {
		l.o.Log.Debug("memberlist send", "to", node, "error", err)
	}
	go func() {
		if err := l.ml.SendReliable(to, msg); err != nil {
			l.o.Log.Debug("memberlist send", "to", node, "error", err)
		}
	}()
}

// member is memberlist's node of that name, nil if none.
func (l *List) member(name string) *memberlist.Node {
	for _, n := range l.ml.Members() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Leave says goodbye to every peer (so they stop counting on this speaker
// at once, without waiting to find it dead), leaves and shuts down.
func (l *List) Leave(timeout time.Duration) {
	bye := l.message(msgBye, nil)
	for _, n := range l.ml.Members() {
		if n.Name != l.o.Name {
			_ = l.ml.SendBestEffort(n, bye)
		}
	}
	if err := l.ml.Leave(timeout); err != nil {
		l.o.Log.Debug("memberlist leave", "error", err)
	}
	_ = l.ml.Shutdown()
}

// Shutdown stops without a goodbye.
func (l *List) Shutdown() { _ = l.ml.Shutdown() }

// NotifyJoin implements memberlist.EventDelegate.
func (l *List) NotifyJoin(n *memberlist.Node) {
	if l.markAlive(n) {
		l.o.Log.Info("speaker joined", "peer", n.Name, "address", n.Address())
		l.o.OnChange(true)
	}
}

// markAlive records a peer alive (not this node); it says whether n is a peer.
func (l *List) markAlive(n *memberlist.Node) bool {
	if n.Name == l.o.Name {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.markLocked(n)
	return true
}

func (l *List) markLocked(n *memberlist.Node) {
	delete(l.refusedBoot, n.Name)
	l.alive[n.Name], l.known[n.Name] = true, true
	l.addrs[n.Name] = n.Address()
	if id, err := parseMeta(n.Meta); err == nil {
		l.peers[n.Name] = id
	} else {
		delete(l.peers, n.Name)
		l.o.Log.Debug("peer's messages not trusted", "peer", n.Name, "error", err)
	}
}

// NotifyLeave implements memberlist.EventDelegate.
func (l *List) NotifyLeave(n *memberlist.Node) {
	if n.Name == l.o.Name {
		return
	}
	l.gone(n.Name, n.State == memberlist.StateLeft)
}

func (l *List) gone(name string, left bool) {
	l.mu.Lock()
	was := l.alive[name]
	l.alive[name] = false
	if left {
		delete(l.known, name)
	}
	l.mu.Unlock()
	if was {
		if left {
			l.o.Log.Info("speaker left", "peer", name)
		} else {
			l.o.Log.Warn("speaker dead", "peer", name)
		}
	}
	l.o.OnChange(false)
}

// NotifyUpdate implements memberlist.EventDelegate: a new start ID in the
// metadata means the speaker restarted.
func (l *List) NotifyUpdate(n *memberlist.Node) {
	if l.markAlive(n) {
		l.o.OnChange(true)
	}
}

// bootOf returns the boot ID a member publishes ("" when its metadata
// does not parse).
func bootOf(n *memberlist.Node) string {
	id, err := parseMeta(n.Meta)
	if err != nil {
		return ""
	}
	return id.boot
}

type delegate struct{ l *List }

// NodeMeta publishes the boot ID (new at every start: a peer that restarts
// faster than it is found dead still shows as an update) and the public
// key its messages are signed with.
func (d delegate) NodeMeta(limit int) []byte {
	m := d.l.id.meta()
	if len(m) > limit {
		return nil
	}
	return m
}

func (d delegate) NotifyMsg(b []byte) {
	m, err := d.l.check(b)
	if err != nil {
		if ok, n := d.l.bad.Allow("rejected"); ok {
			d.l.o.Log.Warn("memberlist message rejected (forged, replayed or from a speaker of an older version)",
				"peer", m.from, "error", err, "rejected since the last line", n)
		}
		return
	}
	switch m.kind {
	case msgBye:
		d.l.gone(m.from, true)
	case msgRelease:
		d.l.o.OnRelease(m.from, m.ips)
	case msgCheck:
		d.l.checkHint(m.ips[0])
	}
}

// check decodes a message and accepts it only from the named sender's
// current start: its boot ID, its key, and a counter not seen before.
func (l *List) check(b []byte) (message, error) {
	m, signed, sig, err := open(b)
	if err != nil {
		return message{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := l.peers[m.from]
	switch {
	case m.from == l.o.Name || !ok:
		return m, fmt.Errorf("from %q: not a peer with a published key", m.from)
	case m.boot != id.boot:
		return m, fmt.Errorf("from %q: boot ID %q is not the peer's current one", m.from, m.boot)
	case !ed25519.Verify(id.pub, signed, sig):
		return m, errSignature
	}
	w := l.windows[m.from]
	if w == nil {
		w = &window{}
		l.windows[m.from] = w
	}
	if !w.accept(m.boot, m.seq) {
		return m, fmt.Errorf("from %q: counter %d already seen (a replay)", m.from, m.seq)
	}
	return m, nil
}

func (d delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d delegate) LocalState(bool) []byte          { return nil }
func (d delegate) MergeRemoteState([]byte, bool)   {}

// logWriter passes memberlist's log lines ("[LEVEL] memberlist: ...") to
// slog: errors and warnings as such, the rest at debug level. Errors and
// warnings of one kind (the text before the first colon, e.g. "Decrypt
// packet failed") are logged once a minute with the number held back:
// anyone on the LAN can send undecryptable packets as fast as they like.
type logWriter struct {
	log      *slog.Logger
	throttle *logging.Throttle
}

func newLogWriter(log *slog.Logger) logWriter {
	return logWriter{log: log, throttle: logging.NewThrottle(time.Minute, nil)}
}

func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(line, "[ERR]"):
		level = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	}
	if i := strings.Index(line, "] "); i >= 0 {
		line = line[i+2:]
	}
	if level == slog.LevelDebug {
		w.log.Debug(line)
		return len(p), nil
	}
	kind := strings.TrimPrefix(line, "memberlist: ")
	if i := strings.IndexByte(kind, ':'); i >= 0 {
		kind = kind[:i]
	}
	if ok, n := w.throttle.Allow(kind); ok {
		if n > 0 {
			w.log.Log(context.Background(), level, line, "like it since the last line", n)
		} else {
			w.log.Log(context.Background(), level, line)
		}
	}
	return len(p), nil
}
