package lab

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/election"
)

// TestSpeakersRunOnTheAcceptedConfig: with the ConfigMap broken, every
// speaker restarted still announces (it runs on the controller's accepted
// copy, and says the config is stale); a speaker with no config at all
// takes no part in the election, so its share of addresses moves to a
// speaker that announces it.
func TestSpeakersRunOnTheAcceptedConfig(t *testing.T) {
	cl := startCluster(t)
	ctx := context.Background()
	cl.addBackend(t, "web-0", "web", "node-b")
	ip := cl.createService(t, "web", "web", false)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)

	cm, err := cl.c.CoreV1().ConfigMaps("metallb-system").Get(ctx, "config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["config"] = "address-pools: [\n"
	if _, err := cl.c.CoreV1().ConfigMaps("metallb-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range Nodes {
		_ = syscall.Kill(-cl.speakers[n].Process.Pid, syscall.SIGKILL)
		_ = cl.speakers[n].Wait()
		cl.startSpeaker(t, n)
	}
	waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)
	ownerAddr := NodeAddr(owner)
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, _ := HTTPGet("client", ownerAddr+":7473", "/metrics")
		if strings.Contains(body, "metallb_k8s_client_config_stale_bool 1") && strings.Contains(body, "metallb_k8s_client_config_loaded_bool 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted owner does not say it runs on a stale config:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The owner's speaker comes back with no config at all (a ConfigMap
	// that was never accepted): it must not be elected.
	_ = syscall.Kill(-cl.speakers[owner].Process.Pid, syscall.SIGKILL)
	_ = cl.speakers[owner].Wait()
	var log string
	cl.speakers[owner], log = StartProcessLog(t, owner, "speaker-noconfig.log", cl.bin, "speaker",
		"--node-name", owner, "--kubeconfig", cl.env.Kubeconfig, "--metrics-addr", ":7473", "--metrics-secure=false", "--config", "never-written")
	next := nextOwner(netip.MustParseAddr(ip))
	waitOneMAC(t, ip, cl.MACs[next], 20*time.Second)
	macs, out := Arping(t, ctx, ip, 5)
	if len(macs) != 1 || macs[cl.MACs[next]] == 0 {
		t.Fatalf("arping: %v, want only %s (%s)\n%s", macs, next, cl.MACs[next], out)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "no accepted configuration yet: this speaker announces nothing and takes no part in elections") {
		t.Errorf("the speaker without config does not say why it stays out:\n%s", b)
	}
	if l, err := cl.c.CoordinationV1().Leases("metallb-system").Get(ctx, "metallb-speaker-"+owner, metav1.GetOptions{}); err == nil &&
		l.Spec.RenewTime != nil && time.Since(l.Spec.RenewTime.Time) < 2*time.Second {
		t.Errorf("the speaker without config renews its Lease (%v ago)", time.Since(l.Spec.RenewTime.Time))
	}
}
