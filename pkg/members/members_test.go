package members

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
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
	changes  chan struct{}
}

func start(t *testing.T, name, addr string, port int, key []byte, r *recorder) *List {
	t.Helper()
	l, err := Start(Options{Name: name, Bind: netip.MustParseAddr(addr), Port: port, Key: key,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnChange: func(bool) {
			select {
			case r.changes <- struct{}{}:
			default:
			}
		},
		OnRelease: func(from string, ips []netip.Addr) {
			r.mu.Lock()
			r.released[from] = ips
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
