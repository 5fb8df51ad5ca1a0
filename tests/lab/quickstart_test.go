package lab

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/iprange"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// The router side of the BGP quick start (enable RANGE --bgp-peer ROUTER
// --peer-asn N --my-asn 64500), as docs/configuration.md gives it: each
// router takes sessions from any node of the LAN (dynamic neighbours), so
// nodes that join later need no router change. Both are eBGP.
const (
	// quickBird: BIRD 2 in AS 64501 at 198.51.100.254.
	quickBird = `log "LOGFILE" all;
router id 198.51.100.254;
protocol device { scan time 1; }
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }
protocol bgp metallb {
  local 198.51.100.254 as 64501;
  neighbor range 198.51.100.0/24 external;
  dynamic name "node";
  ipv4 { import all; export none; };
}
`
	// quickFRR: FRR in AS 64502 at 198.51.100.253.
	quickFRR = `frr defaults traditional
hostname lab-frr
!
router bgp 64502
 bgp router-id 198.51.100.253
 no bgp ebgp-requires-policy
 neighbor metallb peer-group
 neighbor metallb remote-as external
 bgp listen range 198.51.100.0/24 peer-group metallb
 address-family ipv4 unicast
  maximum-paths 8
 exit-address-family
!
`
)

// TestBGPQuickStart: the config enable's quick start writes (pool
// "default" by BGP, one peer per --bgp-peer) against BIRD and FRR with
// the router configs the docs give: every node peers, the Service's
// address is routed over the three.
func TestBGPQuickStart(t *testing.T) {
	rs, err := iprange.ParseList("203.0.113.0/28")
	if err != nil {
		t.Fatal(err)
	}
	var text []byte
	for _, p := range []config.QuickPeer{
		{Address: netip.MustParseAddr("198.51.100.254"), PeerASN: 64501, MyASN: 64500},
		{Address: netip.MustParseAddr(FRRAddress), PeerASN: 64502, MyASN: 64500},
	} {
		if text, err = config.SetBGPPool(text, "default", rs, p); err != nil {
			t.Fatal(err)
		}
	}
	RequireBird(t)
	RequireFRR(t)
	cl := startCluster(t, withConfig(string(text)))
	cl.addBackend(t, "web-0", "web", "node-b")
	vip := cl.createService(t, "web", "web", false)

	t.Run("BIRD with a neighbor range", func(t *testing.T) {
		bird := StartBird(t, quickBird)
		waitEstablished(t, bird, 3, 30*time.Second)
		d := WaitNextHops(t, vip+"/32", allNodes, 20*time.Second)
		t.Logf("%s/32 via the three nodes %v after BIRD started its dynamic sessions", vip, d.Round(time.Millisecond))
	})
	t.Run("FRR with bgp listen range", func(t *testing.T) {
		frr := StartFRR(t, quickFRR)
		testenv.Eventually(t, 30*time.Second, "3 dynamic sessions established at FRR", func() bool { return len(frr.Established()) == 3 })
		testenv.Eventually(t, 20*time.Second, vip+"/32 over the three nodes at FRR", func() bool {
			return slices.Equal(frr.ECMP(vip+"/32"), allNodes)
		})
	})
}
