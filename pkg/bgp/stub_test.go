package bgp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// testRouter is the other end of a session for the stub's unit tests: a
// loopback listener that speaks enough BGP, with GoBGP's packet library, to
// open a session and record what it receives. The lab tests prove the stub
// against BIRD and FRR.
type testRouter struct {
	t    testing.TB
	ln   net.Listener
	asn  uint32
	caps []pkt.ParameterCapabilityInterface
	hold uint16
	msgs chan *pkt.BGPMessage // everything received after the OPEN
	open chan *pkt.BGPOpen
	conn chan net.Conn
}

func newTestRouter(t testing.TB, asn uint32, password string) *testRouter {
	return newTestRouterOn(t, "127.0.0.1", asn, password)
}

func newTestRouterOn(t testing.TB, addr string, asn uint32, password string) *testRouter {
	t.Helper()
	a := netip.MustParseAddr(addr)
	lc := net.ListenConfig{}
	if password != "" {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = setMD5(int(fd), a, password) })
			return errors.Join(err, serr)
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	r := &testRouter{t: t, ln: ln, asn: asn, hold: 9, msgs: make(chan *pkt.BGPMessage, 1000),
		open: make(chan *pkt.BGPOpen, 10), conn: make(chan net.Conn, 10),
		caps: []pkt.ParameterCapabilityInterface{pkt.NewCapMultiProtocol(routeFamily(a)), pkt.NewCapFourOctetASNumber(asn),
			pkt.NewCapGracefulRestart(false, false, 120, []*pkt.CapGracefulRestartTuple{pkt.NewCapGracefulRestartTuple(routeFamily(a), false)})}}
	t.Cleanup(func() { ln.Close() })
	go r.serve()
	return r
}

func (r *testRouter) port() uint16 { return uint16(r.ln.Addr().(*net.TCPAddr).Port) }

func (r *testRouter) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.t.Cleanup(func() { c.Close() })
		go r.handle(c)
	}
}

func (r *testRouter) handle(c net.Conn) {
	buf := make([]byte, maxMsgLen)
	opened := false
	for {
		raw, err := readMsg(c, buf)
		if err != nil {
			return
		}
		m, err := pkt.ParseBGPMessage(append(buf[:headerLen:headerLen], raw.body...))
		if err != nil {
			r.t.Errorf("the stub sent a message GoBGP cannot parse: %v", err)
			return
		}
		if o, ok := m.Body.(*pkt.BGPOpen); ok && !opened {
			opened = true
			r.open <- o
			r.send(c, pkt.NewBGPOpenMessage(twoOctetAS(r.asn), r.hold, "192.0.2.254", []pkt.OptionParameterInterface{pkt.NewOptionParameterCapability(r.caps)}))
			r.send(c, pkt.NewBGPKeepAliveMessage())
			r.conn <- c
			continue
		}
		r.msgs <- m
	}
}

func (r *testRouter) send(c net.Conn, m *pkt.BGPMessage) {
	b, err := m.Serialize()
	if err != nil {
		r.t.Error(err)
		return
	}
	_, _ = c.Write(b)
}

// next returns the next message of a type other than KEEPALIVE.
func (r *testRouter) next(t testing.TB) *pkt.BGPMessage {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-r.msgs:
			if m.Header.Type != pkt.BGP_MSG_KEEPALIVE {
				return m
			}
		case <-deadline:
			t.Fatal("no message from the stub")
		}
	}
}

// notification skips UPDATEs up to the next NOTIFICATION.
func (r *testRouter) notification(t *testing.T) *pkt.BGPNotification {
	t.Helper()
	for {
		if n, ok := r.next(t).Body.(*pkt.BGPNotification); ok {
			return n
		}
	}
}

// route is an UPDATE summed up for comparison.
type route struct {
	NLRI, Withdrawn []string
	Attrs           []string
}

func summary(m *pkt.BGPMessage) route {
	u := m.Body.(*pkt.BGPUpdate)
	var r route
	for _, p := range u.NLRI {
		r.NLRI = append(r.NLRI, p.String())
	}
	for _, p := range u.WithdrawnRoutes {
		r.Withdrawn = append(r.Withdrawn, p.String())
	}
	for _, a := range u.PathAttributes {
		r.Attrs = append(r.Attrs, a.String())
	}
	return r
}

func isEoR(m *pkt.BGPMessage) bool {
	u, ok := m.Body.(*pkt.BGPUpdate)
	if !ok {
		return false
	}
	eor, _ := u.IsEndOfRib()
	return eor
}

// startStub starts a stub that advertises routes (before the session can
// come up, so that they are its initial routes) and adds peer p.
func startStub(t *testing.T, p Peer, routes ...Route) *Stub {
	t.Helper()
	s := NewStub(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start(context.Background(), netip.MustParseAddr("192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	for _, r := range routes {
		_ = s.Advertise(context.Background(), r)
	}
	if err := s.AddPeer(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return s
}

func testPeer(r *testRouter, myASN uint32) Peer {
	return Peer{Address: netip.MustParseAddr("127.0.0.1"), Port: r.port(), ASN: r.asn, MyASN: myASN,
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, GracefulRestart: true}
}

func TestStubAdvertises(t *testing.T) {
	comm := []config.Community{{Parts: [3]uint32{64500, 7}}, {Large: true, Parts: [3]uint32{64500, 1, 2}}}
	pfx := netip.MustParsePrefix("203.0.113.10/32")
	for _, tc := range []struct {
		name   string
		asn    uint32
		want   route
		update route // after a local-pref change
	}{
		{"iBGP", 64500,
			route{NLRI: []string{"203.0.113.10/32"}, Attrs: []string{"{Origin: i}", "{AsPath: }", "{Nexthop: 127.0.0.1}", "{LocalPref: 100}", "{Communities: 64500:7}", "{LargeCommunity: [ 64500:1:2]}"}},
			route{NLRI: []string{"203.0.113.10/32"}, Attrs: []string{"{Origin: i}", "{AsPath: }", "{Nexthop: 127.0.0.1}", "{LocalPref: 150}", "{Communities: 64500:7}", "{LargeCommunity: [ 64500:1:2]}"}}},
		{"eBGP, 4-octet AS", 4200000001,
			route{NLRI: []string{"203.0.113.10/32"}, Attrs: []string{"{Origin: i}", "{AsPath: 64500}", "{Nexthop: 127.0.0.1}", "{Communities: 64500:7}", "{LargeCommunity: [ 64500:1:2]}"}},
			route{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRouter(t, tc.asn, "")
			s := startStub(t, testPeer(r, 64500), Route{Prefix: pfx, Communities: comm})
			o := <-r.open
			if o.MyAS != 64500 || o.ID.String() != "192.0.2.1" || o.HoldTime != 9 {
				t.Errorf("OPEN: AS %d, ID %s, hold %d", o.MyAS, o.ID, o.HoldTime)
			}
			first := r.next(t)
			if diff := cmp.Diff(tc.want, summary(first)); diff != "" {
				t.Errorf("advertised (-want +got):\n%s", diff)
			}
			if eor := r.next(t); !isEoR(eor) {
				t.Errorf("want End-of-RIB after the initial routes, got %v", summary(eor))
			}
			if tc.update.NLRI != nil {
				_ = s.Advertise(context.Background(), Route{Prefix: pfx, Communities: comm, LocalPref: 150, HasLocalPref: true})
				if diff := cmp.Diff(tc.update, summary(r.next(t))); diff != "" {
					t.Errorf("re-advertised (-want +got):\n%s", diff)
				}
			}
			_ = s.Withdraw(context.Background(), pfx)
			if diff := cmp.Diff(route{Withdrawn: []string{"203.0.113.10/32"}}, summary(r.next(t))); diff != "" {
				t.Errorf("withdrawn (-want +got):\n%s", diff)
			}
			if !waitFor(func() bool { st := s.Sessions(); return len(st) == 1 && st[0].Up && st[0].Prefixes == 0 }) {
				t.Errorf("sessions %+v", s.Sessions())
			}
			// Removing the peer closes with Cease, peer de-configured.
			_ = s.DeletePeer(context.Background(), testPeer(r, 64500))
			n := r.next(t).Body.(*pkt.BGPNotification)
			if n.ErrorCode != pkt.BGP_ERROR_CEASE || n.ErrorSubcode != pkt.BGP_ERROR_SUB_PEER_DECONFIGURED {
				t.Errorf("notification %d/%d", n.ErrorCode, n.ErrorSubcode)
			}
		})
	}
}

func TestStubIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	ln.Close()
	r := newTestRouterOn(t, "::1", 64500, "")
	p := testPeer(r, 64500)
	p.Address = netip.MustParseAddr("::1")
	s := startStub(t, p, Route{Prefix: netip.MustParsePrefix("2001:db8::10/128")},
		Route{Prefix: netip.MustParsePrefix("203.0.113.10/32")}) // another family: not sent
	want := route{Attrs: []string{"{Origin: i}", "{AsPath: }", "{LocalPref: 100}", "{MpReach(ipv6-unicast): {Nexthop: ::1, NLRIs: [2001:db8::10/128]}}"}}
	if diff := cmp.Diff(want, summary(r.next(t))); diff != "" {
		t.Errorf("advertised (-want +got):\n%s", diff)
	}
	if !isEoR(r.next(t)) {
		t.Error("want End-of-RIB")
	}
	_ = s.Withdraw(context.Background(), netip.MustParsePrefix("2001:db8::10/128"))
	want = route{Attrs: []string{"{MpUnreach(ipv6-unicast): {NLRIs: [2001:db8::10/128]}}"}}
	if diff := cmp.Diff(want, summary(r.next(t))); diff != "" {
		t.Errorf("withdrawn (-want +got):\n%s", diff)
	}
}

// A route naming peers goes to those sessions only; naming others moves
// it: withdrawn from the one, advertised to the other.
func TestStubRoutesPerPeer(t *testing.T) {
	ra, rb := newTestRouterOn(t, "127.0.0.1", 64500, ""), newTestRouterOn(t, "127.0.0.2", 64500, "")
	pa, pb := testPeer(ra, 64500), testPeer(rb, 64500)
	pa.Name, pb.Name = "a", "b"
	pb.Address = netip.MustParseAddr("127.0.0.2")
	only, all := netip.MustParsePrefix("203.0.113.10/32"), netip.MustParsePrefix("203.0.113.11/32")
	s := startStub(t, pa, Route{Prefix: only, Peers: []string{"a"}}, Route{Prefix: all})
	if err := s.AddPeer(context.Background(), pb); err != nil {
		t.Fatal(err)
	}
	attrs := []string{"{Origin: i}", "{AsPath: }", "{Nexthop: 127.0.0.1}", "{LocalPref: 100}"}
	if diff := cmp.Diff(route{NLRI: []string{only.String(), all.String()}, Attrs: attrs}, summary(ra.next(t))); diff != "" {
		t.Errorf("to a (-want +got):\n%s", diff)
	}
	if got := summary(rb.next(t)); !slices.Equal(got.NLRI, []string{all.String()}) {
		t.Errorf("to b: %+v, want %s only", got, all)
	}
	for _, r := range []*testRouter{ra, rb} {
		if !isEoR(r.next(t)) {
			t.Error("want End-of-RIB")
		}
	}
	_ = s.Advertise(context.Background(), Route{Prefix: only, Peers: []string{"b"}})
	if diff := cmp.Diff(route{Withdrawn: []string{only.String()}}, summary(ra.next(t))); diff != "" {
		t.Errorf("a, once the route names b (-want +got):\n%s", diff)
	}
	if got := summary(rb.next(t)); !slices.Equal(got.NLRI, []string{only.String()}) {
		t.Errorf("b, once the route names it: %+v", got)
	}
}

// sendRoutes makes the router announce n /32s to the stub.
func (r *testRouter) sendRoutes(c net.Conn, n int) {
	attrs := []pkt.PathAttributeInterface{pkt.NewPathAttributeOrigin(0),
		pkt.NewPathAttributeAsPath(nil), pkt.NewPathAttributeNextHop("127.0.0.1"), pkt.NewPathAttributeLocalPref(100)}
	for i := 0; i < n; i += 500 {
		var nlri []*pkt.IPAddrPrefix
		for j := i; j < min(n, i+500); j++ {
			nlri = append(nlri, pkt.NewIPAddrPrefix(32, netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}).String()))
		}
		r.send(c, pkt.NewBGPUpdateMessage(nil, attrs, nlri))
	}
}

func TestStubRefusesAndMaxPrefix(t *testing.T) {
	r := newTestRouter(t, 64500, "")
	p := testPeer(r, 64500)
	p.MaxPrefix = 2000
	tripped := make(chan int, 1)
	s := NewStub(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.OnMaxPrefix = func(_ Peer, n int) { tripped <- n }
	_ = s.Start(context.Background(), netip.MustParseAddr("192.0.2.1"))
	t.Cleanup(s.Stop)
	_ = s.AddPeer(context.Background(), p)
	c := <-r.conn
	r.sendRoutes(c, 1500)
	// The same routes again (an attribute change) do not count twice
	// against max-prefix, but each is counted as refused.
	r.sendRoutes(c, 1500)
	r.send(c, pkt.NewBGPKeepAliveMessage())
	if !waitFor(func() bool { return s.sessions()[0].refused.Load() == 3000 }) {
		t.Fatalf("refused %d, want 3000", s.sessions()[0].refused.Load())
	}
	if !s.Sessions()[0].Up {
		t.Fatal("session closed below max-prefix")
	}
	r.sendRoutes(c, 2001)
	select {
	case n := <-tripped:
		if n != 2001 {
			t.Errorf("tripped at %d", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("max-prefix never tripped")
	}
	if n := r.notification(t); n.ErrorCode != pkt.BGP_ERROR_CEASE || n.ErrorSubcode != pkt.BGP_ERROR_SUB_MAXIMUM_NUMBER_OF_PREFIXES_REACHED {
		t.Errorf("notification %d/%d", n.ErrorCode, n.ErrorSubcode)
	}
}

func TestStubRefusesBadOpen(t *testing.T) {
	r := newTestRouter(t, 64999, "")
	p := testPeer(r, 64500)
	p.ASN = 64501 // the router says 64999
	startStub(t, p)
	n := r.notification(t)
	if n.ErrorCode != pkt.BGP_ERROR_OPEN_MESSAGE_ERROR || n.ErrorSubcode != pkt.BGP_ERROR_SUB_BAD_PEER_AS {
		t.Errorf("notification %d/%d", n.ErrorCode, n.ErrorSubcode)
	}
}

func TestStubMD5AndRestart(t *testing.T) {
	r := newTestRouter(t, 64500, "s3cret")
	p := testPeer(r, 64500)
	p.Password = "s3cret"
	s := startStub(t, p)
	o := <-r.open
	var gr *pkt.CapGracefulRestart
	for _, op := range o.OptParams {
		for _, c := range op.(*pkt.OptionParameterCapability).Capability {
			if g, ok := c.(*pkt.CapGracefulRestart); ok {
				gr = g
			}
		}
	}
	// A process younger than RestartTime says it restarts, forwarding kept.
	if gr == nil || gr.Flags&0x08 == 0 || gr.Time != 120 || len(gr.Tuples) != 1 || gr.Tuples[0].Flags&0x80 == 0 {
		t.Errorf("graceful restart capability %+v", gr)
	}
	<-r.conn
	if !waitFor(func() bool { st := s.Sessions(); return len(st) == 1 && st[0].Up }) {
		t.Fatal("no session with the right password")
	}
	s.Stop() // Cease, administrative shutdown
	n := r.notification(t)
	if n.ErrorCode != pkt.BGP_ERROR_CEASE || n.ErrorSubcode != pkt.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN {
		t.Errorf("notification %d/%d", n.ErrorCode, n.ErrorSubcode)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(cond func() bool) bool {
	for range 500 {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func TestNegotiated(t *testing.T) {
	for _, tc := range []struct {
		ours, keep time.Duration
		theirs     uint16
		hold, ka   int64
	}{
		{90 * time.Second, 30 * time.Second, 9, 9, 3},
		{9 * time.Second, 3 * time.Second, 90, 9, 3},
		{0, 0, 90, 0, 0}, // hold-time 0: no keepalives
		{90 * time.Second, 30 * time.Second, 0, 0, 0},
		{3 * time.Second, 0, 3, 3, 1},
	} {
		h, k := negotiated(Peer{HoldTime: tc.ours, KeepaliveTime: tc.keep}, tc.theirs)
		if h != tc.hold || k != tc.ka {
			t.Errorf("ours %v/%v theirs %d: got %d/%d, want %d/%d", tc.ours, tc.keep, tc.theirs, h, k, tc.hold, tc.ka)
		}
	}
}

func TestScanUpdate(t *testing.T) {
	v6 := []pkt.AddrPrefixInterface{pkt.NewIPv6AddrPrefix(64, "2001:db8::"), pkt.NewIPv6AddrPrefix(128, "2001:db8::1")}
	for _, tc := range []struct {
		name string
		msg  *pkt.BGPMessage
		want []string
		eor  bool
	}{
		{"v4", pkt.NewBGPUpdateMessage([]*pkt.IPAddrPrefix{pkt.NewIPAddrPrefix(24, "198.51.100.0")},
			[]pkt.PathAttributeInterface{pkt.NewPathAttributeOrigin(0), pkt.NewPathAttributeNextHop("192.0.2.1")},
			[]*pkt.IPAddrPrefix{pkt.NewIPAddrPrefix(0, "0.0.0.0"), pkt.NewIPAddrPrefix(32, "203.0.113.5")}),
			[]string{"-198.51.100.0/24", "+0.0.0.0/0", "+203.0.113.5/32"}, false},
		{"v6", pkt.NewBGPUpdateMessage(nil, []pkt.PathAttributeInterface{pkt.NewPathAttributeOrigin(0),
			pkt.NewPathAttributeMpReachNLRI("2001:db8::ff", v6)}, nil),
			[]string{"+2001:db8::/64", "+2001:db8::1/128"}, false},
		{"v6 withdrawn", pkt.NewBGPUpdateMessage(nil, []pkt.PathAttributeInterface{pkt.NewPathAttributeMpUnreachNLRI(v6)}, nil),
			[]string{"-2001:db8::/64", "-2001:db8::1/128"}, false},
		{"v4 EoR", pkt.NewEndOfRib(pkt.RF_IPv4_UC), nil, true},
		{"v6 EoR", pkt.NewEndOfRib(pkt.RF_IPv6_UC), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.msg.Serialize()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			eor, err := scanUpdate(b[headerLen:], func(p netip.Prefix, w bool) {
				got = append(got, map[bool]string{true: "-", false: "+"}[w]+p.String())
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" || eor != tc.eor {
				t.Errorf("eor %v; prefixes (-want +got):\n%s", eor, diff)
			}
		})
	}
}

// FuzzScanUpdate: scanUpdate never panics, and wherever GoBGP's parser
// accepts an UPDATE both count the same IPv4 prefixes.
func FuzzScanUpdate(f *testing.F) {
	for _, m := range []*pkt.BGPMessage{
		pkt.NewBGPUpdateMessage([]*pkt.IPAddrPrefix{pkt.NewIPAddrPrefix(24, "198.51.100.0")},
			[]pkt.PathAttributeInterface{pkt.NewPathAttributeOrigin(0), pkt.NewPathAttributeNextHop("192.0.2.1")},
			[]*pkt.IPAddrPrefix{pkt.NewIPAddrPrefix(32, "203.0.113.5")}),
		pkt.NewEndOfRib(pkt.RF_IPv6_UC),
		pkt.NewBGPUpdateMessage(nil, []pkt.PathAttributeInterface{pkt.NewPathAttributeMpReachNLRI("2001:db8::ff",
			[]pkt.AddrPrefixInterface{pkt.NewIPv6AddrPrefix(64, "2001:db8::")})}, nil),
	} {
		b, _ := m.Serialize()
		f.Add(b[headerLen:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var n4 int
		_, err := scanUpdate(body, func(p netip.Prefix, w bool) {
			if p.Addr().Is4() && !w {
				n4++
			}
		})
		if err != nil || len(body)+headerLen > maxMsgLen {
			return
		}
		m, perr := pkt.ParseBGPBody(&pkt.BGPHeader{Type: pkt.BGP_MSG_UPDATE, Len: uint16(headerLen + len(body))}, body)
		if perr != nil {
			return
		}
		u := m.Body.(*pkt.BGPUpdate)
		want := len(u.NLRI)
		for _, a := range u.PathAttributes {
			if mp, ok := a.(*pkt.PathAttributeMpReachNLRI); ok && mp.AFI == pkt.AFI_IP && mp.SAFI == pkt.SAFI_UNICAST {
				want += len(mp.Value)
			}
		}
		if n4 != want {
			t.Errorf("scanUpdate counted %d IPv4 prefixes, GoBGP %d", n4, want)
		}
	})
}

// A router (or whoever took its place on the path) that sends garbage
// once the session is up gets the NOTIFICATION RFC 4271 6 names for it
// (none for a NOTIFICATION, however garbled), and the stub opens a new
// session and advertises its routes again: nothing it sends takes the
// speaker down.
func TestStubSurvivesRouterGarbage(t *testing.T) {
	hdr := func(typ byte, n int, body ...byte) []byte {
		b := append(bytes.Repeat([]byte{0xff}, 16), byte(n>>8), byte(n), typ)
		return append(b, body...)
	}
	open, err := pkt.NewBGPOpenMessage(64500, 9, "192.0.2.254", nil).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix("203.0.113.10/32")
	for _, tc := range []struct {
		name      string
		garbage   []byte
		code, sub uint8
		notify    bool
	}{
		{"bad marker", append(make([]byte, 16), 0, 19, 4), pkt.BGP_ERROR_MESSAGE_HEADER_ERROR, pkt.BGP_ERROR_SUB_CONNECTION_NOT_SYNCHRONIZED, true},
		{"length below a header", hdr(4, 18), pkt.BGP_ERROR_MESSAGE_HEADER_ERROR, pkt.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH, true},
		{"length past 4096", hdr(2, 5000), pkt.BGP_ERROR_MESSAGE_HEADER_ERROR, pkt.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH, true},
		{"KEEPALIVE with a body", hdr(4, 20, 0), pkt.BGP_ERROR_MESSAGE_HEADER_ERROR, pkt.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH, true},
		{"UPDATE shorter than its fields", hdr(2, 22, 0, 0, 0), pkt.BGP_ERROR_MESSAGE_HEADER_ERROR, pkt.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH, true},
		{"unknown type", hdr(9, 19), pkt.BGP_ERROR_MESSAGE_HEADER_ERROR, pkt.BGP_ERROR_SUB_BAD_MESSAGE_TYPE, true},
		{"withdrawn routes past the end", hdr(2, 23, 0xff, 0xff, 0, 0), pkt.BGP_ERROR_UPDATE_MESSAGE_ERROR, pkt.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST, true},
		{"attributes past the end", hdr(2, 27, 0, 0, 0, 0x40, 0x40, 1, 1, 0), pkt.BGP_ERROR_UPDATE_MESSAGE_ERROR, pkt.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST, true},
		{"OPEN once established", open, pkt.BGP_ERROR_FSM_ERROR, 0, true},
		{"NOTIFICATION of garbage", hdr(3, 25, 0xff, 0xee, 1, 2, 3, 4), 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newTestRouter(t, 64500, "")
			s := startStub(t, testPeer(r, 64500), Route{Prefix: pfx})
			c := <-r.conn
			if got := summary(r.next(t)).NLRI; !slices.Equal(got, []string{pfx.String()}) {
				t.Fatalf("first UPDATE announces %v", got)
			}
			if !isEoR(r.next(t)) {
				t.Fatal("no End-of-RIB")
			}
			if _, err := c.Write(tc.garbage); err != nil {
				t.Fatal(err)
			}
			if tc.notify {
				if n := r.notification(t); n.ErrorCode != tc.code || n.ErrorSubcode != tc.sub {
					t.Errorf("notification %d/%d, want %d/%d", n.ErrorCode, n.ErrorSubcode, tc.code, tc.sub)
				}
			}
			select {
			case <-r.conn:
			case <-time.After(3 * ConnectRetry):
				t.Fatal("no new session after the garbage")
			}
			if got := summary(r.next(t)).NLRI; !slices.Equal(got, []string{pfx.String()}) {
				t.Errorf("the new session announces %v", got)
			}
			if !waitFor(func() bool { st := s.Sessions(); return len(st) == 1 && st[0].Up }) {
				t.Errorf("sessions %+v", s.Sessions())
			}
		})
	}
}

// FuzzReadMsg reads arbitrary bytes as a router's stream: every message it
// returns has a known type and a length its type allows, and it never
// panics.
func FuzzReadMsg(f *testing.F) {
	ka, _ := pkt.NewBGPKeepAliveMessage().Serialize()
	f.Add(ka)
	f.Add(append(bytes.Repeat([]byte{0xff}, 16), 0, 23, 2, 0, 0, 0, 0))
	f.Add(append(bytes.Repeat([]byte{0xff}, 16), 0x13, 0x88, 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		buf := make([]byte, maxMsgLen)
		for {
			m, err := readMsg(r, buf)
			if err != nil {
				return
			}
			least, known := minMsgLen[m.typ]
			if n := headerLen + len(m.body); !known || n < least || n > maxMsgLen {
				t.Fatalf("read type %d of %d bytes", m.typ, n)
			}
		}
	})
}

// A sync after the first looks at the prefixes changed since the last one
// only, each once however often it changed, and only those of the
// session's family.
func TestStubSyncLooksAtChanges(t *testing.T) {
	s := NewStub(slog.New(slog.NewTextHandler(io.Discard, nil)))
	p := Peer{Address: netip.MustParseAddr("192.0.2.254"), Name: "a"}
	ps := &peerSession{s: s, p: p, wake: make(chan struct{}, 1), dirty: map[netip.Prefix]struct{}{}}
	s.peers[p.Key()] = ps
	pfx := func(i int) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32) }
	for i := range 200 {
		_ = s.Advertise(context.Background(), Route{Prefix: pfx(i)})
	}
	_ = s.Advertise(context.Background(), Route{Prefix: netip.MustParsePrefix("2001:db8::1/128")})
	want, look := s.routesFor(ps, true)
	if len(want) != 200 || look != nil {
		t.Fatalf("first sync: %d routes, look %v; want the 200 IPv4 routes", len(want), look)
	}
	_ = s.Advertise(context.Background(), Route{Prefix: pfx(1), LocalPref: 150, HasLocalPref: true})
	_ = s.Advertise(context.Background(), Route{Prefix: pfx(1), LocalPref: 200, HasLocalPref: true})
	_ = s.Withdraw(context.Background(), pfx(2))
	_ = s.Advertise(context.Background(), Route{Prefix: pfx(3), Peers: []string{"b"}}) // not for a any more
	_ = s.Advertise(context.Background(), Route{Prefix: netip.MustParsePrefix("2001:db8::2/128")})
	want, look = s.routesFor(ps, false)
	slices.SortFunc(look, netip.Prefix.Compare)
	if diff := cmp.Diff([]netip.Prefix{pfx(1), pfx(2), pfx(3)}, look, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("looked at (-want +got):\n%s", diff)
	}
	if r, ok := want[pfx(1)]; len(want) != 1 || !ok || r.LocalPref != 200 {
		t.Errorf("routes %+v, want %s with local-pref 200 only", want, pfx(1))
	}
	if _, look = s.routesFor(ps, false); len(look) != 0 {
		t.Errorf("nothing changed since, looked at %v", look)
	}
}

// BenchmarkStubChange is what one route change costs a session, from
// Advertise to the UPDATE read by the router, with 100 and with 10,000
// routes advertised: the two should be alike.
func BenchmarkStubChange(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			r := newTestRouter(b, 64500, "")
			var routes []Route
			for i := range n {
				routes = append(routes, Route{Prefix: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}), 128)})
			}
			for i := range n {
				routes = append(routes, Route{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)})
			}
			s := NewStub(slog.New(slog.NewTextHandler(io.Discard, nil)))
			_ = s.Start(context.Background(), netip.MustParseAddr("192.0.2.1"))
			defer s.Stop()
			for _, rt := range routes {
				_ = s.Advertise(context.Background(), rt)
			}
			_ = s.AddPeer(context.Background(), testPeer(r, 64500))
			for m := r.next(b); !isEoR(m); m = r.next(b) {
			}
			b.ResetTimer()
			for i := range b.N {
				rt := routes[n+i%n]
				rt.LocalPref, rt.HasLocalPref = uint32(101+i/n%2), true // differs from its last
				_ = s.Advertise(context.Background(), rt)
				r.next(b)
			}
		})
	}
}
