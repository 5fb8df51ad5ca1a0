package members

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// freePort finds a port free on TCP and UDP of the loopback addresses used.
func freePort(t *testing.T) int {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", l.Addr().String())
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type recorder struct {
	mu       sync.Mutex
	released map[string][]netip.Addr
	releases int // every release accepted, from anyone
	changes  chan struct{}
}

func newRecorder() *recorder {
	return &recorder{released: map[string][]netip.Addr{}, changes: make(chan struct{}, 1)}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.releases
}

func start(t *testing.T, name, addr string, port int, key []byte, r *recorder) *List {
	t.Helper()
	return startLogging(t, name, addr, port, key, r, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func startLogging(t *testing.T, name, addr string, port int, key []byte, r *recorder, log *slog.Logger) *List {
	t.Helper()
	l, err := Start(Options{Name: name, Bind: netip.MustParseAddr(addr), Port: port, Key: key,
		Log: log,
		OnChange: func(bool) {
			select {
			case r.changes <- struct{}{}:
			default:
			}
		},
		OnRelease: func(from string, ips []netip.Addr) {
			r.mu.Lock()
			r.released[from] = ips
			r.releases++
			r.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMembership(t *testing.T) {
	port := freePort(t)
	key := Key("c2VjcmV0LWtleS1vZi0zMi1ieXRlcy0tLS0tLS0tLS0=")
	ra := &recorder{released: map[string][]netip.Addr{}, changes: make(chan struct{}, 1)}
	rb := &recorder{released: map[string][]netip.Addr{}, changes: make(chan struct{}, 1)}
	a := start(t, "a", "127.0.0.1", port, key, ra)
	defer a.Shutdown()
	b := start(t, "b", "127.0.0.2", port, key, rb)
	defer b.Shutdown()
	b.Join([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")})
	eventually(t, "joined", func() bool { return a.Alive("b") && b.Alive("a") })

	ips := []netip.Addr{netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8::200")}
	a.Release("b", ips)
	eventually(t, "released", func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return cmp.Equal(rb.released["a"], ips, cmp.Comparer(func(x, y netip.Addr) bool { return x == y }))
	})

	// A speaker with the wrong key is not let in.
	rc := &recorder{released: map[string][]netip.Addr{}, changes: make(chan struct{}, 1)}
	c := start(t, "c", "127.0.0.3", port, Key("another secret"), rc)
	c.Join([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if c.Peers() != 0 || a.Alive("c") {
		t.Fatal("a speaker with another key joined")
	}
	c.Shutdown()

	// Killed (no goodbye): found dead quickly, and still known.
	t0 := time.Now()
	b.Shutdown()
	eventually(t, "b dead", func() bool { return !a.Alive("b") })
	t.Logf("dead found in %v", time.Since(t0).Round(time.Millisecond))
	if diff := cmp.Diff([]string{"b"}, a.Known()); diff != "" {
		t.Fatalf("known (-want +got):\n%s", diff)
	}

	// Back, then stopped with a goodbye: gone at once, not known.
	b = start(t, "b", "127.0.0.2", port, key, rb)
	b.Join([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	eventually(t, "b back", func() bool { return a.Alive("b") })
	b.Leave(200 * time.Millisecond)
	eventually(t, "b gone", func() bool { return !a.Alive("b") && len(a.Known()) == 0 })
}

func TestKey(t *testing.T) {
	if len(Key("")) != 0 || len(Key("x")) != 32 || len(Key("AAAAAAAAAAAAAAAAAAAAAA==")) != 16 {
		t.Fatal("key derivation")
	}
}

// TestReplayAndForgery: a keyed third speaker (who can send anything
// memberlist carries) replays node b's recorded messages and forges
// others in b's name; none changes what a believes. Each attack is
// followed by a genuine release from c, sent the same way: once a has
// it, a has handled the attack before it.
func TestReplayAndForgery(t *testing.T) {
	port := freePort(t)
	key := Key("one secret for every speaker")
	ra, rb, rc := newRecorder(), newRecorder(), newRecorder()
	a := start(t, "a", "127.0.0.1", port, key, ra)
	defer a.Shutdown()
	b := start(t, "b", "127.0.0.2", port, key, rb)
	c := start(t, "c", "127.0.0.3", port, key, rc)
	defer c.Shutdown()
	all := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	b.Join(all)
	c.Join(all)
	eventually(t, "all joined", func() bool { return a.Alive("b") && a.Alive("c") && c.Alive("b") })

	// What a recorder on the LAN kept of b's traffic (decrypted: c has the key).
	ips := []netip.Addr{netip.MustParseAddr("198.51.100.200")}
	release := b.message(msgRelease, ips)
	bye := b.message(msgBye, nil)
	b.send("a", release)
	eventually(t, "b's release", func() bool { return ra.count() >= 1 })

	sent := 1
	attack := func(what string, msg []byte) {
		t.Helper()
		to := c.member("a")
		if err := c.ml.SendBestEffort(to, msg); err != nil {
			t.Fatal(err)
		}
		if err := c.ml.SendBestEffort(to, c.message(msgRelease, nil)); err != nil {
			t.Fatal(err)
		}
		sent++
		eventually(t, "the barrier after "+what, func() bool { return ra.count() >= sent })
		if ra.count() != sent || !a.Alive("b") {
			t.Fatalf("%s: %d releases accepted (want %d), b alive %v", what, ra.count(), sent, a.Alive("b"))
		}
	}
	attack("a replayed release", release)

	attack("a goodbye in b's name signed by c", seal(message{kind: msgBye, from: "b", boot: b.id.boot, seq: 1000}, c.key))
	attack("a release in b's name signed by c", seal(message{kind: msgRelease, from: "b", boot: b.id.boot, seq: 1001, ips: ips}, c.key))
	attack("b's goodbye with its counter changed", append(append([]byte{}, bye[:len(bye)-64-1]...), append([]byte("9"), bye[len(bye)-64:]...)...))

	// b restarts (a new boot ID and key); the goodbye recorded during its
	// previous run is replayed: b stays alive.
	b.Shutdown()
	eventually(t, "b dead", func() bool { return !a.Alive("b") })
	b = start(t, "b", "127.0.0.2", port, key, rb)
	defer b.Shutdown()
	b.Join(all)
	eventually(t, "b back", func() bool { return a.Alive("b") })
	attack("b's goodbye of its previous start", bye)

	// b's own goodbye of this start is still heard at once.
	b.Leave(200 * time.Millisecond)
	eventually(t, "b gone", func() bool { return !a.Alive("b") })
}

// TestResyncOnJoin: whatever made a speaker believe a peer gone, the next
// rejoin reads memberlist's states again.
func TestResyncOnJoin(t *testing.T) {
	port := freePort(t)
	key := Key("one secret for every speaker")
	ra, rb := newRecorder(), newRecorder()
	a := start(t, "a", "127.0.0.1", port, key, ra)
	defer a.Shutdown()
	b := start(t, "b", "127.0.0.2", port, key, rb)
	defer b.Shutdown()
	all := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
	b.Join(all)
	eventually(t, "joined", func() bool { return a.Alive("b") })
	a.gone("b", true) // as a goodbye would
	if a.Alive("b") {
		t.Fatal("b still alive")
	}
	a.Join(all)
	if !a.Alive("b") {
		t.Fatal("b not alive after the rejoin, though memberlist holds it alive")
	}
}

// countingHandler counts the records at warning level or above.
type countingHandler struct {
	slog.Handler
	mu     *sync.Mutex
	counts map[string]int
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.counts[r.Message]++
		h.mu.Unlock()
	}
	return nil
}

// TestFloodLogsOnce: 2,000 undecryptable datagrams and 2,000 forged
// messages give one log line each, not one per packet.
func TestFloodLogsOnce(t *testing.T) {
	port := freePort(t)
	key := Key("one secret for every speaker")
	h := countingHandler{Handler: slog.NewTextHandler(io.Discard, nil), mu: &sync.Mutex{}, counts: map[string]int{}}
	ra, rc := newRecorder(), newRecorder()
	a := startLogging(t, "a", "127.0.0.1", port, key, ra, slog.New(h))
	defer a.Shutdown()
	c := start(t, "c", "127.0.0.3", port, key, rc)
	defer c.Shutdown()
	c.Join([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	eventually(t, "joined", func() bool { return a.Alive("c") })

	conn, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := c.member("a")
	forged := seal(message{kind: msgBye, from: "c", boot: "not-c's", seq: 1}, c.key)
	for i := range 2000 {
		if _, err := conn.Write([]byte("garbage that no key decrypts " + strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if err := c.ml.SendBestEffort(to, forged); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // loopback buffers are not endless
		}
	}
	if err := c.ml.SendBestEffort(to, c.message(msgRelease, nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the barrier", func() bool { return ra.count() == 1 })
	h.mu.Lock()
	defer h.mu.Unlock()
	total := 0
	for line, n := range h.counts {
		// The flood can also cost a probe its answer on a busy machine;
		// memberlist says so once, and that is not a line per packet.
		if !strings.Contains(line, "UDP probes failed") {
			total += n
		}
	}
	if total > 2 || !a.Alive("c") {
		t.Fatalf("%d lines logged (want at most 2), c alive %v: %v", total, a.Alive("c"), h.counts)
	}
	t.Logf("lines: %v", h.counts)
}
