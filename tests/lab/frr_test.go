package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// frrBGPConfig is bgpConfig's pool, with FRR as the peer.
func frrBGPConfig(password string) string {
	return fmt.Sprintf(`peers:
- peer-address: %s
  peer-asn: 64500
  my-asn: 64500
  hold-time: 3s
  password: %q
address-pools:
- name: routed
  protocol: bgp
  addresses: [203.0.113.0/24]
  bgp-advertisements:
  - communities: ["64500:100", "large:64500:1:2"]
    localpref: 150
`, FRRAddress, password)
}

// TestBGPFRR runs the BGP session, ECMP, community and withdrawal checks
// against FRRouting (the stack of most routers users name: pfSense, VyOS,
// OPNsense), as TestBGP does against BIRD.
func TestBGPFRR(t *testing.T) {
	RequireFRR(t)
	cl := startCluster(t, withConfig(frrBGPConfig(birdPassword)))
	frr := StartFRR(t, FRRConfig(birdPassword, allNodes))

	t.Run("iBGP sessions with MD5 from every node", func(t *testing.T) {
		testenv.Eventually(t, 20*time.Second, "3 sessions established at FRR", func() bool { return len(frr.Established()) == 3 })
	})

	t.Run("Cluster policy: ECMP over every node, communities and local-pref", func(t *testing.T) {
		cl.addBackend(t, "web-1", "web", "node-b")
		vip := cl.createService(t, "web", "web", false)
		testenv.Eventually(t, 10*time.Second, vip+"/32 over the three nodes at FRR", func() bool {
			return slices.Equal(frr.ECMP(vip+"/32"), allNodes)
		})
		for _, p := range frr.Paths(vip + "/32") {
			if diff := cmp.Diff(FRRPath{NextHop: p.NextHop, Communities: "64500:100", LargeCommunities: "64500:1:2", LocalPref: 150,
				Best: p.Best, Multipath: p.Multipath}, p); diff != "" {
				t.Errorf("path (-want +got):\n%s", diff)
			}
		}

		// Withdrawal: the Service goes, so does its route.
		if err := cl.c.CoreV1().Services("demo").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, vip+"/32 withdrawn at FRR", func() bool { return len(frr.Paths(vip+"/32")) == 0 })
	})

	t.Run("Local policy: only the endpoint's node", func(t *testing.T) {
		cl.addBackend(t, "local-1", "local", "node-c")
		ip := cl.createService(t, "local", "local", true)
		testenv.Eventually(t, 10*time.Second, ip+"/32 via node-c only at FRR", func() bool {
			return slices.Equal(frr.ECMP(ip+"/32"), []string{NodeAddr("node-c")})
		})
	})

	t.Run("hold-time 0: the sessions run with neither keepalives nor hold timer (RFC 4271)", func(t *testing.T) {
		cl.setConfig(t, strings.Replace(frrBGPConfig(birdPassword), "hold-time: 3s", "hold-time: 0s", 1))
		testenv.Eventually(t, 30*time.Second, "3 sessions at FRR with hold time 0", func() bool {
			out, err := frr.Show("show bgp neighbors json")
			if err != nil {
				return false
			}
			var ns map[string]struct {
				State     string `json:"bgpState"`
				Hold      *int   `json:"bgpTimerHoldTimeMsecs"`
				Keepalive *int   `json:"bgpTimerKeepAliveIntervalMsecs"`
			}
			if json.Unmarshal([]byte(out), &ns) != nil {
				return false
			}
			n := 0
			for _, st := range ns {
				if st.State == "Established" && st.Hold != nil && *st.Hold == 0 && st.Keepalive != nil && *st.Keepalive == 0 {
					n++
				}
			}
			return n == 3
		})
		cl.addBackend(t, "zero-1", "zero", "node-a")
		vip := cl.createService(t, "zero", "zero", false)
		testenv.Eventually(t, 10*time.Second, vip+"/32 over the three nodes at FRR", func() bool {
			return slices.Equal(frr.ECMP(vip+"/32"), allNodes)
		})
	})
}
