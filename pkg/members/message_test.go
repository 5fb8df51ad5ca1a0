package members

import (
	"crypto/ed25519"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var addrCmp = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func TestSealOpen(t *testing.T) {
	key := testKey(t, 1)
	m := message{kind: msgRelease, from: "node-b", boot: "0123abcd", seq: 7,
		ips: []netip.Addr{netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8::200")}}
	b := seal(m, key)
	got, signed, sig, err := open(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got, cmp.AllowUnexported(message{}), addrCmp); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), signed, sig) {
		t.Fatal("signature does not verify")
	}
	b[5] ^= 1 // one bit of the body changed
	_, signed, sig, _ = open(b)
	if ed25519.Verify(key.Public().(ed25519.PublicKey), signed, sig) {
		t.Fatal("a changed message verifies")
	}
}

func TestOpenRefuses(t *testing.T) {
	key := testKey(t, 1)
	sig := make([]byte, ed25519.SignatureSize)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{name: "empty", in: nil, want: errShort},
		{name: "the old unsigned goodbye", in: []byte("Bnode-b"), want: errShort},
		{name: "unknown kind", in: append([]byte("Xnode-b 01 1"), sig...), want: errKind},
		{name: "no counter", in: append([]byte("Bnode-b 01"), sig...), want: errFields},
		{name: "counter not a number", in: append([]byte("Bnode-b 01 x"), sig...), want: errFields},
		{name: "goodbye with addresses", in: append([]byte("Bnode-b 01 1 192.0.2.1"), sig...), want: errFields},
		{name: "bad address", in: append([]byte("Rnode-b 01 1 192.0.2.300"), sig...), want: errFields},
		{name: "empty sender", in: append([]byte("R 01 1"), sig...), want: errFields},
		{name: "check without an address", in: append([]byte("Cnode-b 01 1"), sig...), want: errFields},
		{name: "check with two addresses", in: append([]byte("Cnode-b 01 1 192.0.2.1 192.0.2.2"), sig...), want: errFields},
		{name: "double space", in: seal(message{kind: msgRelease, from: "a b", boot: "01", seq: 1}, key), want: errFields},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := open(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("open(%q) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	type step struct {
		Boot string
		Seq  uint64
		OK   bool
	}
	steps := []step{
		{"b1", 1, true},
		{"b1", 1, false}, // the TCP copy of the datagram, or a replay
		{"b1", 3, true},
		{"b1", 2, true}, // overtaken, still inside the window
		{"b1", 2, false},
		{"b1", 0, false}, // never sent
		{"b1", 100, true},
		{"b1", 37, true},  // 63 behind: still inside
		{"b1", 37, false}, // and seen
		{"b1", 36, false}, // 64 behind: too old to tell, refused
		{"b2", 1, true},   // a new start counts from 1 again
		{"b1", 101, true}, // the old boot resets the window (the peer's key check stops the real replay)
	}
	var w window
	for i, s := range steps {
		if got := w.accept(s.Boot, s.Seq); got != s.OK {
			t.Errorf("step %d %+v: accept = %v", i, s, got)
		}
	}
}

func TestParseMeta(t *testing.T) {
	key := testKey(t, 2)
	id := identity{boot: "00ff", pub: key.Public().(ed25519.PublicKey)}
	got, err := parseMeta(id.meta())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(id, got, cmp.AllowUnexported(identity{})); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "boot=00ff", "boot=00ff key=AAAA", "key=" + string(id.meta()[len("boot=00ff key="):])} {
		if _, err := parseMeta([]byte(bad)); err == nil {
			t.Errorf("parseMeta(%q) accepted", bad)
		}
	}
}

// FuzzOpen: open never panics, and what it accepts seals into a message
// that opens to the same values.
func FuzzOpen(f *testing.F) {
	key := testKey(f, 3)
	f.Add(seal(message{kind: msgRelease, from: "node-a", boot: "01", seq: 1, ips: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}, key))
	f.Add(seal(message{kind: msgBye, from: "node-a", boot: "01", seq: 2}, key))
	f.Add(seal(message{kind: msgCheck, from: "node-a", boot: "01", seq: 3, ips: []netip.Addr{netip.MustParseAddr("192.0.2.2")}}, key))
	f.Add([]byte("Bnode-a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, _, err := open(b)
		if err != nil {
			return
		}
		again, _, _, err := open(seal(m, key))
		if err != nil {
			t.Fatalf("open(%q) = %+v, which does not open once sealed: %v", b, m, err)
		}
		if diff := cmp.Diff(m, again, cmp.AllowUnexported(message{}), addrCmp); diff != "" {
			t.Fatalf("open(%q) sealed again (-first +second):\n%s", b, diff)
		}
	})
}
