package layer2

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/ipv6"
)

// The kernel stamps a datagram when it arrives, not when it is read:
// the responders rely on it to leave alone requests that came in before
// their claim. Checked on a loopback UDP socket (no privileges needed).
func TestRxTimestampIsArrivalTime(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	rc, err := rx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := enableRxTimestamps(rc); err != nil {
		t.Fatal(err)
	}
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	// The kernel turns stamping on a moment after the first socket of the
	// machine asks for it (until then a datagram is stamped when read):
	// try a few times.
	const late = 100 * time.Millisecond
	buf, oob := make([]byte, 64), make([]byte, oobSize)
	for try := 1; ; try++ {
		sent := time.Now()
		if _, err := tx.Write([]byte("who-has")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(late) // the reader is slow
		_, oobn, _, _, err := rx.ReadMsgUDP(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		read := time.Now()
		at := rxTime(oob[:oobn])
		if at.IsZero() {
			t.Fatal("no receive timestamp")
		}
		if !at.Before(sent.Round(0)) && read.Sub(at) >= late {
			break
		}
		if try == 20 {
			t.Fatalf("stamped %v after the send and %v before the read; want at or after the send and at least %v before the read",
				at.Sub(sent), read.Sub(at), late)
		}
	}
	if got := rxTime(nil); !got.IsZero() {
		t.Errorf("rxTime(nil) = %v, want zero", got)
	}
	if got := rxTime([]byte{1, 2, 3}); !got.IsZero() {
		t.Errorf("rxTime(garbage) = %v, want zero", got)
	}
}

// Received NDP messages are trusted only at hop limit 255: the kernel
// passes each datagram's hop limit up once asked. Checked on a loopback
// UDP socket (no privileges needed).
func TestRxHopLimit(t *testing.T) {
	rx, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer rx.Close()
	rc, err := rx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := enableRxHopLimit(rc); err != nil {
		t.Fatal(err)
	}
	tx, err := net.DialUDP("udp6", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	buf, oob := make([]byte, 64), make([]byte, ndpOOBSize)
	for _, hl := range []int{255, 64, 1} {
		if err := ipv6.NewConn(tx).SetHopLimit(hl); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Write([]byte("solicit")); err != nil {
			t.Fatal(err)
		}
		_, oobn, _, _, err := rx.ReadMsgUDP(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := rxHopLimit(oob[:oobn]); !ok || got != hl {
			t.Errorf("sent at hop limit %d: read %d (%v)", hl, got, ok)
		}
	}
	if _, ok := rxHopLimit(nil); ok {
		t.Error("rxHopLimit(nil) found a hop limit")
	}
}
