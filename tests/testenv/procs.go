package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StopGroup ends the process group led by pid: SIGTERM, then SIGKILL if
// done is not closed within grace; it returns once done is closed.
func StopGroup(pid int, done <-chan struct{}, grace time.Duration) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
}

// UnmountUnder detaches every mount below one of dirs, deepest first (what
// containers and kubelets leave behind).
func UnmountUnder(dirs ...string) {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) < 2 {
			continue
		}
		for _, dir := range dirs {
			if dir != "" && strings.HasPrefix(f[1], dir) {
				_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
				break
			}
		}
	}
}

// CPUTicks returns the user+system CPU time of a process so far, in clock
// ticks (1/100 s).
func CPUTicks(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (which may hold spaces).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s, nil
}
