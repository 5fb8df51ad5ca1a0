package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/election"
)

// TestLayer2LinkBounce takes the announcing node's link down for 100 ms,
// then for 1 s: each time the address is answered again within 1 s of the
// link coming up (the responder that failed with the link is reopened at
// once and announces its addresses), by one MAC.
func TestLayer2LinkBounce(t *testing.T) {
	cl := startCluster(t)
	ctx := context.Background()
	cl.addBackend(t, "web-0", "web", "node-b")
	ip := cl.createService(t, "web", "web", false)
	vip := netip.MustParseAddr(ip)
	owner := election.Owner(vip, Nodes)
	waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)
	w := newARPProbe(t, vip)
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	w.askEvery(pctx, 50*time.Millisecond)
	ownerV6 := map[string]string{"node-a": "2001:db8::11", "node-b": "2001:db8::12", "node-c": "2001:db8::13"}[owner]

	for _, down := range []time.Duration{100 * time.Millisecond, time.Second} {
		t.Run(fmt.Sprintf("down %v", down), func(t *testing.T) {
			if out, err := Exec(ctx, owner, "ip", "link", "set", "eth0", "down").CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if down >= time.Second {
				// Readiness says the address has no working responder.
				eventually(t, down, "the owner's /readyz to fail while its link is down", func() bool {
					body, _ := HTTPGet(owner, "127.0.0.1:7473", "/readyz")
					return strings.Contains(body, " 503 ")
				})
			}
			time.Sleep(down)
			w.reset()
			up := time.Now()
			for _, args := range [][]string{
				{"ip", "link", "set", "eth0", "up"},
				{"ip", "-6", "addr", "replace", ownerV6 + "/64", "dev", "eth0", "nodad"},
				{"ip", "route", "replace", "default", "via", "198.51.100.254"},
			} {
				if out, err := Exec(ctx, owner, args...).CombinedOutput(); err != nil {
					t.Fatalf("%v: %v: %s", args, err, out)
				}
			}
			at, mac, ok := w.firstAfter(5 * time.Second)
			if !ok {
				t.Fatalf("no answer for %s within 5 s of the link coming up\n%s", ip, tail(cl.speakerLog(t, owner), 3000))
			}
			t.Logf("link down %v: %s answered by %s %v after the link came up", down, ip, mac, at.Sub(up).Round(time.Millisecond))
			if at.Sub(up) > time.Second {
				t.Errorf("answered %v after the link came up, want within 1 s", at.Sub(up).Round(time.Millisecond))
			}
			eventually(t, 5*time.Second, "the owner's /readyz to pass again", func() bool {
				body, _ := HTTPGet(owner, "127.0.0.1:7473", "/readyz")
				return strings.Contains(body, " 200 ")
			})
			// And then by the elected owner alone. (When the outage was long
			// enough for another node to take over, the address comes back
			// to the owner: that failback can briefly show two MACs, a
			// known limit tracked with the speaker's hand-offs.)
			waitOneMAC(t, ip, cl.MACs[owner], 10*time.Second)
		})
	}
}
