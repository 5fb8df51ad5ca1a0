package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Containerd is a private containerd (its own root, state and socket; no
// CRI plugin, no network) for testing image imports.
type Containerd struct {
	Dir string
	// Ctr is the client command targeting the kubelet's k8s.io namespace, as
	// MicroK8s's microk8s-ctr.wrapper does.
	Ctr []string
	cmd *exec.Cmd
	log *os.File
}

// ContainerdMissing says what StartContainerd needs that is not here ("" if
// nothing).
func ContainerdMissing() string {
	var missing []string
	for _, tool := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if len(missing) == 0 {
		return ""
	}
	return "needs " + strings.Join(missing, ", ") + " (scripts/setup.sh installs Debian's containerd)"
}

// StartContainerd starts a private containerd and waits until it answers.
func StartContainerd() (*Containerd, error) {
	if m := ContainerdMissing(); m != "" {
		return nil, fmt.Errorf("containerd: %s", m)
	}
	dir, err := os.MkdirTemp("", "mlb-containerd-")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "containerd.sock")
	conf := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	c := &Containerd{Dir: dir, Ctr: []string{"ctr", "--address", sock, "--namespace", "k8s.io"}, log: logf}
	c.cmd = exec.Command("containerd", "--config", conf)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for Ctr(context.Background(), c.Ctr, "version").Run() != nil {
		if time.Now().After(deadline) {
			log := c.Log()
			c.Stop()
			return nil, fmt.Errorf("containerd did not start within 15s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c, nil
}

// Log returns containerd's log.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(c.log.Name())
	return string(b)
}

// Stop ends containerd and removes everything it created.
func (c *Containerd) Stop() {
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	StopGroup(c.cmd.Process.Pid, done, 5*time.Second)
	c.log.Close()
	// A container run may leave snapshot mounts: unmount them first.
	UnmountUnder(c.Dir)
	_ = os.RemoveAll(c.Dir)
}

// Ctr runs a containerd client command (ctr with its address and
// namespace, as in Containerd.Ctr) with more arguments.
func Ctr(ctx context.Context, ctr []string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, ctr[0], append(slices.Clone(ctr[1:]), args...)...)
}
