package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// vrfResources: one BGPPeer reached only through the device "red0" of
// node-a, and a pool announced to it.
const vrfResources = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: red}
spec:
  addresses: [198.51.100.230-198.51.100.235]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: red}
spec:
  ipAddressPools: [red]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: red}
spec:
  myASN: 64500
  peerASN: 64500
  peerAddress: 203.0.113.2
  vrf: red0
  holdTime: 3s
  connectTime: 1s
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: node-a}
`

// vrfBird peers with node-a at 203.0.113.1 only: BIRD takes a session
// from that source address, on the link red0 ends on, and no other.
const vrfBird = `log "LOGFILE" all;
router id 198.51.100.254;
protocol device { scan time 1; }
protocol kernel k4 { ipv4 { import none; export where source = RTS_BGP; }; }
protocol bgp red {
  local 203.0.113.2 as 64500; neighbor 203.0.113.1 as 64500; passive on; direct;
  hold time 3; keepalive time 1; error wait time 1,5;
  ipv4 { import all; export none; };
}
`

// addVRFLink gives node-a a second link to the router, red0 (203.0.113.1)
// to vrf-r (203.0.113.2). Its address has no route in node-a's main
// table (noprefixroute): a socket not bound to red0 reaches 203.0.113.2
// by the default route, through eth0, from 198.51.100.11.
func addVRFLink(t *testing.T) {
	t.Helper()
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	t.Cleanup(func() { _ = ip("-n", NS("node-a"), "link", "del", "red0") }) // and its peer
	for _, args := range [][]string{
		{"-n", NS("node-a"), "link", "add", "red0", "type", "veth", "peer", "name", "vrf-r", "netns", NS("router")},
		{"-n", NS("node-a"), "addr", "add", "203.0.113.1/30", "dev", "red0", "noprefixroute"},
		{"-n", NS("node-a"), "link", "set", "red0", "up"},
		{"-n", NS("router"), "addr", "add", "203.0.113.2/30", "dev", "vrf-r"},
		{"-n", NS("router"), "link", "set", "vrf-r", "up"},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBGPVRF: a BGPPeer's vrf binds its session to that device of the
// node (SO_BINDTODEVICE): the session comes from node-a's address on
// red0, which the node's main table does not route to, and the route it
// advertises points there. The kernels this runs on are built without
// VRF devices (CONFIG_NET_VRF), so the device is a plain link; binding
// to a VRF device is the same socket option, whose route lookup then
// uses the VRF's table.
func TestBGPVRF(t *testing.T) {
	RequireBird(t)
	cl := startCluster(t, withConfig("# the pools are metallb.io resources\n"), withResources(vrfResources))
	addVRFLink(t)
	// Without the binding, node-a's kernel would take the default route.
	if out, err := Exec(context.Background(), "node-a", "ip", "route", "get", "203.0.113.2").CombinedOutput(); err != nil || !strings.Contains(string(out), "dev eth0") {
		t.Fatalf("node-a's main table should route 203.0.113.2 through eth0: %v %s", err, out)
	}
	bird := StartBird(t, vrfBird)
	waitEstablished(t, bird, 1, 30*time.Second)
	cl.addBackend(t, "web-0", "web", "node-a")
	ip := cl.createService(t, "web", "web", false)
	WaitNextHops(t, ip+"/32", []string{"203.0.113.1"}, 20*time.Second)
	// BIRD took the session from 203.0.113.1, which only red0 has and
	// the main table does not route from: the socket was bound to red0.
	t.Logf("the session in vrf red0 is up; %s/32 via 203.0.113.1 at the router", ip)
}
