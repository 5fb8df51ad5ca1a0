package layer2

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// loopbackARP opens, in a new network namespace of its own, the
// responder's ARP socket and a client's on that namespace's loopback.
func loopbackARP(t *testing.T) (*arpConn, *packet.Conn) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace and packet sockets")
	}
	type socks struct {
		resp   *arpConn
		client *packet.Conn
		err    error
	}
	ch := make(chan socks, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and the
		// namespace lives on in the sockets only.
		runtime.LockOSThread()
		var s socks
		s.err = func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return err
			}
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			ifr, err := unix.NewIfreq("lo")
			if err != nil {
				return err
			}
			if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
				return err
			}
			ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
			if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
				return err
			}
			lo, err := net.InterfaceByName("lo")
			if err != nil {
				return err
			}
			if s.resp, err = listenARP(lo); err != nil {
				return err
			}
			s.client, err = packet.Listen(lo, packet.Raw, protoARP, nil)
			return err
		}()
		ch <- s
	}()
	s := <-ch
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Cleanup(func() {
		_ = s.resp.Close()
		_ = s.client.Close()
	})
	return s.resp, s.client
}

// A request that reached this node before it claimed the address is not
// answered, however late the responder reads it: the previous owner may
// have answered it, and a second MAC must never answer. Requests that come
// after the claim are. Real sockets: the kernel stamps each frame.
func TestStaleRequestIsNotAnswered(t *testing.T) {
	resp, client := loopbackARP(t)
	vip := netip.MustParseAddr("198.51.100.200")
	request := func(from string) {
		t.Helper()
		if _, err := client.WriteTo(arpFrameBytes(arp.OperationRequest, clientMAC, from, vip.String()), &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			t.Fatal(err)
		}
	}

	// The kernel turns stamping on a moment after the first socket asks
	// for it: wait until a frame read late shows it arrived early.
	buf := make([]byte, 1500)
	for deadline := time.Now().Add(5 * time.Second); ; {
		request("192.0.2.1")
		time.Sleep(20 * time.Millisecond)
		_, at, err := resp.ReadFrame(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !at.IsZero() && time.Since(at) >= 20*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames are not stamped on arrival (last %v)", at)
		}
	}

	a := NewAnnouncer(slog.New(slog.NewTextHandler(io.Discard, nil)), nopEvents{})
	a.ifs["lo"] = &iface{name: "lo", prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	r := newARPResponder("lo", ourMAC, resp, a)

	request("198.51.100.1") // before the claim
	a.SetClaims([]Claim{{IP: vip}})
	request("198.51.100.2")     // after it
	go func() { _ = r.run() }() // both wait in the socket: read late

	var answered []string
	for deadline := time.Now().Add(10 * time.Second); len(answered) == 0 || answered[len(answered)-1] != "198.51.100.2"; {
		_ = client.SetReadDeadline(deadline)
		n, _, err := client.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer to the request made after the claim: %v (answered %v)", err, answered)
		}
		var f ethernet.Frame
		var p arp.Packet
		if f.UnmarshalBinary(buf[:n]) != nil || p.UnmarshalBinary(f.Payload) != nil {
			continue
		}
		if p.Operation == arp.OperationReply && p.SenderIP == vip {
			answered = append(answered, p.TargetIP.String())
		}
	}
	if diff := cmp.Diff([]string{"198.51.100.2"}, answered); diff != "" {
		t.Errorf("requests answered (-want +got):\n%s", diff)
	}
}
