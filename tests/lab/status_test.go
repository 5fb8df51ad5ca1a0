package lab

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/status"
)

func sessionState(r status.Report, node, peer string) string {
	for _, s := range r.Sessions {
		if s.Node == node && s.Peer == peer {
			switch {
			case s.Stale:
				return "stale"
			case s.Up:
				return "up"
			}
			return "down"
		}
	}
	return "none"
}

// TestStatusBGP: `metallb status` on the BGP lab shows every node's
// sessions established and the Service announced by every node; a session
// the router shuts is shown down; a killed speaker is dead, its sessions
// marked as last seen.
func TestStatusBGP(t *testing.T) {
	RequireBird(t)
	cl := startCluster(t, withConfig(bgpConfig(birdPassword, "")))
	bird := StartBird(t, BirdConfig(birdPassword))
	waitEstablished(t, bird, 6, 20*time.Second)
	cl.addBackend(t, "web-1", "web", "node-b")
	vip := cl.createService(t, "web", "web", false)
	WaitNextHops(t, vip+"/32", allNodes, 10*time.Second)

	eventually(t, 10*time.Second, "every session up in metallb status", func() bool {
		r := cl.status(t)
		for _, n := range Nodes {
			if sessionState(r, n, "198.51.100.254") != "up" || sessionState(r, n, "2001:db8::254") != "up" {
				return false
			}
		}
		return true
	})
	r := cl.status(t)
	var web *status.ServiceStatus
	for i := range r.Services {
		if r.Services[i].Service == "demo/web" {
			web = &r.Services[i]
		}
	}
	if web == nil || web.Protocol != "bgp" || strings.Join(web.AnnouncedBy, ",") != "node-a,node-b,node-c" {
		t.Errorf("demo/web in status: %+v", web)
	}
	if r.Config.State != "accepted" {
		t.Errorf("config state %q", r.Config.State)
	}

	// The router shuts node-b's IPv4 session.
	if out, err := bird.Ctl("disable node_b"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	eventually(t, 10*time.Second, "node-b's session down in metallb status", func() bool {
		return sessionState(cl.status(t), "node-b", "198.51.100.254") == "down"
	})
	// node-c's speaker dies.
	_ = syscall.Kill(-cl.speakers["node-c"].Process.Pid, syscall.SIGKILL)
	_ = cl.speakers["node-c"].Wait()
	eventually(t, 15*time.Second, "node-c dead in metallb status", func() bool {
		r := cl.status(t)
		for _, s := range r.Speakers {
			if s.Node == "node-c" {
				return !s.Alive && sessionState(r, "node-c", "198.51.100.254") == "stale"
			}
		}
		return false
	})
	out, _ := exec.CommandContext(context.Background(), cl.bin, "status", "--kubeconfig", cl.env.Kubeconfig).Output()
	t.Logf("metallb status:\n%s", out)
}
