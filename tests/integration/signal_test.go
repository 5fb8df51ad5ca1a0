package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/config/configtest"
)

// TestCommandsStopOnSIGTERM: whatever a command is doing (parsing a config
// bigger than any ConfigMap, or running as the controller), SIGTERM stops
// it within a second.
func TestCommandsStopOnSIGTERM(t *testing.T) {
	env := cluster.Require(t)
	ns := newNamespace(t, env.Client)
	setConfig(t, env.Client, ns, "address-pools:\n- {name: p, protocol: layer2, addresses: [192.0.2.140/30]}\n")
	huge := filepath.Join(t.TempDir(), "huge.yaml")
	// Five times the 1 MiB list of one range: bigger than any ConfigMap.
	over := configtest.Hostile()[0].Text
	_, items, _ := strings.Cut(over, "  addresses:\n")
	text := over + strings.Repeat(items, 4)
	if err := os.WriteFile(huge, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := metallbBinary(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"config validate of a 5 MB config", []string{"config", "validate", "-f", huge}},
		{"controller", []string{"controller", "--kubeconfig", env.Kubeconfig, "--namespace", ns, "--metrics-addr", "", "--health-addr", "", "--leader-elect=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // it is busy by now
			sent := time.Now()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
				t.Logf("stopped %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
			case <-time.After(time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("still running 1 s after SIGTERM")
			}
		})
	}
}
