package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// Bird is a BIRD 2 router running in the lab's router namespace with its
// own config, control socket and log.
type Bird struct {
	t    testing.TB
	dir  string
	conf string
	sock string
	log  string
	cmd  *exec.Cmd
}

// RequireBird skips (or fails under CI) without BIRD 2.
func RequireBird(t testing.TB) {
	t.Helper()
	requireTools(t, "the BGP lab needs BIRD 2 (scripts/setup.sh installs Debian's bird2)", "bird", "birdc")
}

// requireTools skips (or fails under CI, saying msg) without every tool.
func requireTools(t testing.TB, msg string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if testenv.InCI() {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// StartBird runs BIRD with conf in the router namespace until the test ends.
func StartBird(t testing.TB, conf string) *Bird {
	t.Helper()
	RequireBird(t)
	dir := t.TempDir()
	b := &Bird{t: t, dir: dir, conf: filepath.Join(dir, "bird.conf"), sock: filepath.Join(dir, "bird.ctl"), log: filepath.Join(dir, "bird.log")}
	b.write(conf)
	b.cmd = Exec(t.Context(), "router", "bird", "-f", "-c", b.conf, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	out, err := os.Create(filepath.Join(dir, "bird.out"))
	if err != nil {
		t.Fatal(err)
	}
	b.cmd.Stdout, b.cmd.Stderr = out, out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		_ = b.cmd.Wait()
		out.Close()
		if t.Failed() {
			l, _ := os.ReadFile(b.log)
			o, _ := os.ReadFile(out.Name())
			t.Logf("bird log:\n%s\n%s", tail(string(l), 8000), o)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.Ctl("show status"); err == nil {
			return b
		}
		if time.Now().After(deadline) {
			o, _ := os.ReadFile(out.Name())
			t.Fatalf("bird did not start:\n%s", o)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (b *Bird) write(conf string) {
	conf = strings.ReplaceAll(conf, "LOGFILE", b.dir+"/bird.log")
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// Ctl runs a birdc command.
func (b *Bird) Ctl(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", b.sock}, strings.Fields(strings.Join(args, " "))...)...).CombinedOutput()
	return string(out), err
}

// Reconfigure loads a new config (sessions whose settings did not change
// stay up).
func (b *Bird) Reconfigure(conf string) {
	b.t.Helper()
	b.write(conf)
	if out, err := b.Ctl("configure"); err != nil || !strings.Contains(out, "Reconfigur") {
		b.t.Fatalf("birdc configure: %v\n%s", err, out)
	}
}

var sinceRe = regexp.MustCompile(`(?m)^(\S+)\s+BGP\s+\S+\s+(\S+)\s+(\S+ \S+|\S+)\s+(\S.*)$`)

// Protocols returns each BGP protocol's state and "since" column.
func (b *Bird) Protocols() map[string]string {
	out, _ := b.Ctl("show protocols")
	res := map[string]string{}
	for _, m := range sinceRe.FindAllStringSubmatch(out, -1) {
		res[m[1]] = m[2] + " " + m[3] + " " + strings.TrimSpace(m[4])
	}
	return res
}

// NextHops returns the next hops the router's kernel table has for prefix
// (one for a plain route, several for an ECMP route), sorted.
func NextHops(prefix string) []string {
	fam := "-4"
	if strings.Contains(prefix, ":") {
		fam = "-6"
	}
	out, _ := exec.Command("ip", "-n", NS("router"), fam, "route", "show", "exact", prefix).CombinedOutput()
	var hops []string
	fs := strings.Fields(string(out))
	for i := 0; i+1 < len(fs); i++ {
		if fs[i] == "via" {
			hops = append(hops, fs[i+1])
		}
	}
	sort.Strings(hops)
	return hops
}

// WaitNextHops polls until prefix has exactly want as next hops, and
// returns how long that took.
func WaitNextHops(t testing.TB, prefix string, want []string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	sort.Strings(want)
	for {
		got := NextHops(prefix)
		if strings.Join(got, ",") == strings.Join(want, ",") {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("router: %s via %v, want %v after %v", prefix, got, want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BirdConfig is the router's config: iBGP (AS 64500) with the three nodes
// over IPv4 (MD5 with password) and IPv6, hold time 3 s, routes installed
// in the router namespace's kernel with ECMP (merge paths).
func BirdConfig(password string) string {
	var b strings.Builder
	b.WriteString(`log "LOGFILE" all;
router id 198.51.100.254;
protocol device { scan time 1; }
protocol direct lan { ipv4; ipv6; interface "eth0"; }
protocol kernel k4 { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }
protocol kernel k6 { ipv6 { import none; export where source = RTS_BGP; }; merge paths on; }
template bgp node {
  local as 64500;
  passive on;
  hold time 3;
  keepalive time 1;
  error wait time 1,5;
  direct;
}
`)
	for i, n := range Nodes {
		name := strings.ReplaceAll(n, "-", "_")
		fmt.Fprintf(&b, "protocol bgp %s from node { neighbor 198.51.100.%d as 64500; password \"%s\"; ipv4 { import all; export none; }; }\n", name, 11+i, password)
		fmt.Fprintf(&b, "protocol bgp %s_v6 from node { neighbor 2001:db8::%d as 64500; ipv6 { import all; export none; }; }\n", name, 11+i)
	}
	return b.String()
}
