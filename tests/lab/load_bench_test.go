package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/election"
)

// BenchmarkLayer2UnderLoad runs a busy loop on every core for 10 minutes
// (METALLB_LOAD_SECONDS to change) while a client probes the address every
// 100 ms: it counts the speakers found dead (false failovers: none died),
// the owner changes the probes saw, and the probes unanswered or answered
// by two MACs.
func BenchmarkLayer2UnderLoad(b *testing.B) {
	window := time.Duration(envInt("METALLB_LOAD_SECONDS", 600)) * time.Second
	cl := startCluster(b)
	cl.addBackend(b, "web-0", "web", "node-a")
	ipStr := cl.createService(b, "web", "web", false)
	ip := netip.MustParseAddr(ipStr)
	owner := election.Owner(ip, Nodes)
	waitOneMAC(b, ipStr, cl.MACs[owner], 30*time.Second)

	var hogs []*exec.Cmd
	for range runtime.NumCPU() {
		c := exec.Command("sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		hogs = append(hogs, c)
	}
	defer func() {
		for _, c := range hogs {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	ctx, stop := context.WithTimeout(context.Background(), window)
	defer stop()
	rs := <-probeARP(ctx, b, ip, 100*time.Millisecond)
	total, lost, dual := countProbes(rs, time.Time{}, time.Now())
	changes, last := 0, ""
	for _, r := range rs {
		if len(r.macs) != 1 {
			continue
		}
		for m := range r.macs {
			if last != "" && m != last {
				changes++
			}
			last = m
		}
	}
	dead := 0
	for _, n := range Nodes {
		dead += strings.Count(cl.speakerLog(b, n), `msg="speaker dead"`)
	}
	fmt.Printf("%v with %d busy loops: %d probes, %d unanswered, %d answered by two MACs, %d owner changes, %d speakers found dead\n",
		window, len(hogs), total, lost, dual, changes, dead)
	b.ReportMetric(float64(dead), "false-deaths")
	b.ReportMetric(float64(changes), "owner-changes")
	b.ReportMetric(float64(lost), "unanswered")
	b.ReportMetric(float64(dual), "dual-mac")
}
