package testenv

import (
	"os"
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
