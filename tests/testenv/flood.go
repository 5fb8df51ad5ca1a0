package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Flood is the hostile caller of the hardening tests: Callers goroutines
// that GET URL again and again, each time with a new random bearer token
// (so no verdict cache helps), spread over the local addresses Sources
// (none: the kernel's choice). A caller whose connection is refused waits
// Backoff before it tries again, so that the flood loads the server's API
// budget and its connection caps, not the machine's CPU.
type Flood struct {
	URL     string
	Callers int
	Sources []netip.Addr
	Backoff time.Duration
}

// FloodResult counts the answers a flood got.
type FloodResult struct {
	ByStatus map[int]int // HTTP status → answers
	Failed   int         // requests that got no answer (refused, closed, timed out)
}

// Total is the number of requests sent.
func (r FloodResult) Total() int {
	n := r.Failed
	for _, c := range r.ByStatus {
		n += c
	}
	return n
}

// Run floods until ctx ends.
func (f Flood) Run(ctx context.Context) FloodResult {
	var mu sync.Mutex
	res := FloodResult{ByStatus: map[int]int{}}
	var wg sync.WaitGroup
	for i := range f.Callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				DialContext:     SourceDialer(f.Sources, i).DialContext,
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the caller checks nothing: it attacks
			}}
			defer client.CloseIdleConnections()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
				req.Header.Set("Authorization", "Bearer "+randomToken())
				resp, err := client.Do(req)
				mu.Lock()
				if err != nil {
					res.Failed++
				} else {
					res.ByStatus[resp.StatusCode]++
				}
				mu.Unlock()
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(f.Backoff):
					}
					continue
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	return res
}

// SourceDialer dials from the i-th of sources (round robin), or from the
// kernel's choice when there are none.
func SourceDialer(sources []netip.Addr, i int) *net.Dialer {
	d := &net.Dialer{Timeout: 2 * time.Second}
	if len(sources) > 0 {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(sources[i%len(sources)], 0))
	}
	return d
}

// LoopbackSources returns n loopback addresses, 127.1.0.1 onwards: callers
// that look like n different pods to a server on loopback.
func LoopbackSources(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{127, 1, byte((i + 1) >> 8), byte(i + 1)})
	}
	return out
}

// HoldIdle opens n connections to addr, spread over sources, that send
// nothing, and returns them; the caller closes them.
func HoldIdle(addr string, n int, sources []netip.Addr) []net.Conn {
	var conns []net.Conn
	for i := range n {
		c, err := SourceDialer(sources, i).Dial("tcp", addr)
		if err == nil {
			conns = append(conns, c)
		}
	}
	return conns
}

// StillOpen counts the connections the server has not closed: a read
// that times out (rather than seeing EOF or a reset) means still open.
func StillOpen(conns []net.Conn) int {
	n := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			n++
		}
	}
	return n
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// PeakRSS returns the most resident memory process pid has used (VmHWM),
// in bytes, or 0 when it cannot be read.
func PeakRSS(pid int) int64 { return procStatus(pid, "VmHWM:") }

// RSS returns the resident memory of process pid (VmRSS), in bytes.
func RSS(pid int) int64 { return procStatus(pid, "VmRSS:") }

// RSSFile returns the part of the resident memory of process pid that is
// file-backed (RssFile: the binary's pages, shared and reclaimable), in
// bytes; RSS minus it is RssAnon, the process's own memory.
func RSSFile(pid int) int64 { return procStatus(pid, "RssFile:") }

func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Pin restricts every thread of process pid (0: this one) to the given
// CPUs, so that a test on a small machine can give a server a core of its
// own, as its pod's CPU limit and another node's attacker would: threads
// started later inherit the mask of the one that starts them.
func Pin(pid int, cpus ...int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	dir := "/proc/self/task"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid) + "/task"
	}
	// Twice: a thread started while the first pass ran is caught by the
	// second.
	for range 2 {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("pin %d: %w", pid, err)
		}
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin thread %d of %d to CPUs %v: %w", tid, pid, cpus, err)
			}
		}
	}
	return nil
}

// floodEnv carries a flood to run to a child process of the test binary.
const floodEnv = "METALLB_TESTENV_FLOOD"

type floodSpec struct {
	Flood  Flood
	Window time.Duration
	CPUs   []int
}

// RunApart runs the flood for window in a child process of the test binary
// pinned to cpus (none: anywhere), started through wrap (e.g. "ip netns
// exec NAME" to flood from a network namespace; none: directly): the
// attacker of a real cluster runs on another node or host, so its CPU must
// not be taken from the server it attacks. The test binary's TestMain must
// call FloodChild first (Main does).
func (f Flood) RunApart(ctx context.Context, window time.Duration, wrap []string, cpus ...int) (FloodResult, error) {
	spec, err := json.Marshal(floodSpec{Flood: f, Window: window, CPUs: cpus})
	if err != nil {
		return FloodResult{}, err
	}
	argv := append(append([]string{}, wrap...), os.Args[0])
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), floodEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.Output()
	if err != nil {
		return FloodResult{}, fmt.Errorf("flood process: %w", err)
	}
	var res FloodResult
	if err := json.Unmarshal(out, &res); err != nil {
		return FloodResult{}, fmt.Errorf("flood process said %q: %w", out, err)
	}
	return res, nil
}

// FloodChild runs the flood of RunApart when this process is its child
// (ok true: exit with code); call it first thing in TestMain.
func FloodChild() (code int, ok bool) {
	spec := os.Getenv(floodEnv)
	if spec == "" {
		return 0, false
	}
	return floodChild(spec), true
}

// floodChild is the child's part of RunApart: it prints the result as JSON.
func floodChild(spec string) int {
	var s floodSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		return 2
	}
	if len(s.CPUs) > 0 {
		if err := Pin(0, s.CPUs...); err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Window)
	defer cancel()
	if err := json.NewEncoder(os.Stdout).Encode(s.Flood.Run(ctx)); err != nil {
		return 2
	}
	return 0
}
