// Command config measures hostile configurations: for each input, the time
// and peak RSS of `metallb config validate` (the real binary), and of the
// controller's and the speaker's work on a new config (parse and validate,
// then the controller's judgement of 1,000 assignments and its switch to the
// config, or the speaker's announcement plan for 1,000 Services), each in a
// fresh process so that its peak RSS is its own.
//
//	go run ./tests/bench/config -bin bin/metallb
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/allocator"
	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/config/configtest"
)

func main() {
	bin := flag.String("bin", "bin/metallb", "the metallb binary")
	mode := flag.String("mode", "", "internal: controller or speaker, on -f")
	file := flag.String("f", "", "internal: the config file")
	flag.Parse()
	if *mode != "" {
		if err := work(*mode, *file); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	dir, err := os.MkdirTemp("", "metallb-bench-config-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	self, _ := os.Executable()
	fmt.Printf("%-48s %-22s %9s %10s\n", "input", "path", "time", "peak RSS")
	for i, in := range configtest.Hostile() {
		f := filepath.Join(dir, fmt.Sprintf("c%d.yaml", i))
		if err := os.WriteFile(f, []byte(in.Text), 0o600); err != nil {
			panic(err)
		}
		label := fmt.Sprintf("%s (%d KB)", in.Name, len(in.Text)/1024)
		for _, p := range []struct {
			name string
			cmd  *exec.Cmd
		}{
			{"config validate", exec.Command(*bin, "config", "validate", "-f", f)},
			{"controller: judge+set", exec.Command(self, "-mode", "controller", "-f", f)},
			{"speaker: plan", exec.Command(self, "-mode", "speaker", "-f", f)},
		} {
			start := time.Now()
			_ = p.cmd.Run() // exit 1 for an invalid config is expected
			took := time.Since(start)
			rss := p.cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
			fmt.Printf("%-48s %-22s %8.2fs %7.1f MB\n", label, p.name, took.Seconds(), float64(rss)/1024)
		}
	}
}

// work does a component's share on the config in file. An invalid config
// ends after the parse, as in the components (the last good one stays).
func work(mode, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil
	}
	// 1,000 Services holding addresses of the first pool's first range.
	first := cfg.Pools[0].Ranges[0]
	var hs []allocator.Holding
	var svcs []announce.Svc
	for i := range 1000 {
		ip := first.First()
		for range i {
			ip = ip.Next()
		}
		if !first.Contains(ip) {
			break
		}
		key := fmt.Sprintf("ns/s%d", i)
		hs = append(hs, allocator.Holding{Service: allocator.Service{Key: key, Namespace: "ns"}, IPs: []netip.Addr{ip}})
		svcs = append(svcs, announce.Svc{Key: key, IPs: []netip.Addr{ip}, ReadyNodes: []string{"a"}})
	}
	switch mode {
	case "controller":
		a := allocator.New()
		a.SetConfig(cfg)
		for _, h := range hs {
			if _, err := a.Restore(h.Service, h.IPs); err != nil {
				return err
			}
		}
		if got := allocator.Impact(cfg, cfg, a.Holdings()); len(got) != 0 {
			return fmt.Errorf("own config moves %d Services", len(got))
		}
		a.SetConfig(cfg)
	case "speaker":
		nodes := []announce.Node{{Name: "a", Eligible: true, Ready: true}, {Name: "b", Eligible: true, Ready: true}, {Name: "c", Eligible: true, Ready: true}}
		_ = announce.Desired(cfg, "a", nodes, svcs)
	}
	return nil
}
