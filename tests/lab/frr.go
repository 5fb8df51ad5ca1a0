package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FRRAddress is where the lab's FRR router listens: a second address of
// the router namespace, so that it runs beside BIRD (on .254).
const FRRAddress = "198.51.100.253"

// FRR is FRRouting's bgpd (Debian's frr package) in the lab's router
// namespace, without zebra (routes stay in its RIB, read with vtysh).
type FRR struct {
	t   testing.TB
	dir string
}

// RequireFRR skips (or fails under CI) without FRR.
func RequireFRR(t testing.TB) {
	t.Helper()
	requireTools(t, "the FRR lab needs FRRouting (scripts/setup.sh installs Debian's frr)", "/usr/lib/frr/bgpd", "vtysh")
}

// FRRConfig peers AS 64500 (iBGP, like BirdConfig) with the neighbors,
// with MD5 and a 3 s hold time, and takes up to 8 equal paths.
func FRRConfig(password string, neighbors []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname lab-frr\n!\nrouter bgp 64500\n bgp router-id %s\n no bgp ebgp-requires-policy\n", FRRAddress)
	for _, n := range neighbors {
		fmt.Fprintf(&b, " neighbor %s remote-as 64500\n neighbor %s password %s\n neighbor %s timers 1 3\n", n, n, password, n)
	}
	b.WriteString(" address-family ipv4 unicast\n  maximum-paths ibgp 8\n exit-address-family\n!\n")
	return b.String()
}

// StartFRR runs bgpd with conf on FRRAddress, port 179, until the test
// ends.
func StartFRR(t testing.TB, conf string) *FRR {
	t.Helper()
	return StartFRROn(t, conf, 179)
}

// StartFRROn is StartFRR on another port: beside a BIRD that listens on
// every address of the router namespace.
func StartFRROn(t testing.TB, conf string, port int) *FRR {
	t.Helper()
	return startFRR(t, conf, port, "")
}

// StartFRRWithBFD runs zebra, bfdd with bfdConf and bgpd with conf: bfdd
// needs zebra in its namespace (without it sessions stay in Init), and
// zebra installs bgpd's routes in the router namespace's kernel, where
// NextHops reads them.
func StartFRRWithBFD(t testing.TB, conf, bfdConf string) *FRR {
	t.Helper()
	return startFRR(t, conf, 179, bfdConf)
}

func startFRR(t testing.TB, conf string, port int, bfdConf string) *FRR {
	t.Helper()
	RequireFRR(t)
	// zebra and bfdd run as Debian's frr user (root is not in frrvty), so
	// their directory is one that user reaches (not under t.TempDir's
	// 0700 parent).
	dir, err := os.MkdirTemp("", "lab-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if out, err := Exec(t.Context(), "router", "ip", "addr", "add", FRRAddress+"/24", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() {
		_ = Exec(context.Background(), "router", "ip", "addr", "del", FRRAddress+"/24", "dev", "eth0").Run()
	})
	f := &FRR{t: t, dir: dir}
	zserv := filepath.Join(dir, "zserv.api")
	bgpdArgs := []string{"-Z"} // no zebra
	if bfdConf != "" {
		// Each daemon once the one it talks to listens: bfdd that finds no
		// zebra retries only some 10 s later, and installs bgpd's sessions
		// only then (the test would wait on FRR's start, not on BFD).
		f.daemon("zebra", "", "-u", "frr", "-g", "frr", "-z", zserv, "-A", "127.0.0.1", "-P", "0")
		waitSocket(t, zserv)
		bfdctl := filepath.Join(dir, "bfdd.sock")
		f.daemon("bfdd", bfdConf, "-u", "frr", "-g", "frr", "-z", zserv, "--bfdctl", bfdctl, "-A", "127.0.0.1", "-P", "0")
		waitSocket(t, bfdctl)
		bgpdArgs = []string{"-z", zserv}
	}
	// -S: stay root (MD5 on the socket); -l: this address only; -P 0: no
	// telnet vty.
	f.daemon("bgpd", conf, append(bgpdArgs, "-S", "-l", FRRAddress, "-P", "0", "-p", fmt.Sprint(port))...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := f.Show("show bgp summary json")
		if err == nil && bfdConf != "" {
			_, err = f.ShowBFD("show bfd peers json")
		}
		if err == nil {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("FRR did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSocket waits until a Unix socket at path accepts a connection.
func waitSocket(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("FRR: nothing listens on %s after 10 s: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// daemon runs one FRR daemon with conf in the router namespace until the
// test ends; its log is shown if the test fails.
func (f *FRR) daemon(name, conf string, args ...string) {
	t, dir := f.t, f.dir
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name+".conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append(args, "-f", filepath.Join(dir, name+".conf"), "-i", filepath.Join(dir, name+".pid"), "--vty_socket", dir,
		"--log", "file:"+filepath.Join(dir, name+".log"))
	cmd := Exec(t.Context(), "router", append([]string{"/usr/lib/frr/" + name}, args...)...)
	out, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		out.Close()
		if t.Failed() {
			l, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			o, _ := os.ReadFile(out.Name())
			t.Logf("%s log:\n%s\n%s", name, tail(string(l), 8000), o)
		}
	})
}

// ShowBFD runs a vtysh command on bfdd.
func (f *FRR) ShowBFD(cmd string) (string, error) {
	out, err := Exec(f.t.Context(), "router", "vtysh", "--vty_socket", f.dir, "-d", "bfdd", "-c", cmd).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh -d bfdd %q: %v: %s", cmd, err, out)
	}
	return string(out), nil
}

// BFDUp returns the peers whose BFD session bfdd has up.
func (f *FRR) BFDUp() []string {
	out, err := f.ShowBFD("show bfd peers json")
	if err != nil {
		return nil
	}
	var peers []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	_ = json.Unmarshal([]byte(out), &peers)
	var up []string
	for _, p := range peers {
		if p.Status == "up" {
			up = append(up, p.Peer)
		}
	}
	slices.Sort(up)
	return up
}

// Show runs a vtysh command on bgpd.
func (f *FRR) Show(cmd string) (string, error) {
	out, err := Exec(f.t.Context(), "router", "vtysh", "--vty_socket", f.dir, "-d", "bgpd", "-c", cmd).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %q: %v: %s", cmd, err, out)
	}
	return string(out), nil
}

// Established returns the peers whose session is established.
func (f *FRR) Established() []string {
	out, err := f.Show("show bgp ipv4 unicast summary json")
	if err != nil {
		return nil
	}
	var s struct {
		Peers map[string]struct {
			State string `json:"state"`
		} `json:"peers"`
	}
	_ = json.Unmarshal([]byte(out), &s)
	var up []string
	for p, st := range s.Peers {
		if st.State == "Established" {
			up = append(up, p)
		}
	}
	slices.Sort(up)
	return up
}

// FRRPath is one path FRR holds for a prefix.
type FRRPath struct {
	NextHop, Communities, LargeCommunities string
	LocalPref                              int
	Best, Multipath                        bool
}

// Paths returns FRR's paths for prefix.
func (f *FRR) Paths(prefix string) []FRRPath {
	out, err := f.Show("show bgp ipv4 unicast " + prefix + " json")
	if err != nil {
		return nil
	}
	var r struct {
		Paths []struct {
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
			Community struct {
				String string `json:"string"`
			} `json:"community"`
			LargeCommunity struct {
				String string `json:"string"`
			} `json:"largeCommunity"`
			LocPrf    int  `json:"locPrf"`
			Multipath bool `json:"multipath"`
			Bestpath  struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
		} `json:"paths"`
	}
	_ = json.Unmarshal([]byte(out), &r)
	var ps []FRRPath
	for _, p := range r.Paths {
		fp := FRRPath{Communities: p.Community.String, LargeCommunities: p.LargeCommunity.String, LocalPref: p.LocPrf,
			Best: p.Bestpath.Overall, Multipath: p.Multipath}
		if len(p.Nexthops) > 0 {
			fp.NextHop = p.Nexthops[0].IP
		}
		ps = append(ps, fp)
	}
	slices.SortFunc(ps, func(a, b FRRPath) int { return strings.Compare(a.NextHop, b.NextHop) })
	return ps
}

// ECMP returns the next hops FRR would spread traffic over: the best path
// and the multipaths.
func (f *FRR) ECMP(prefix string) []string {
	var hops []string
	for _, p := range f.Paths(prefix) {
		if p.Best || p.Multipath {
			hops = append(hops, p.NextHop)
		}
	}
	return hops
}
