package lab

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// TestDemo runs README's demo end to end, so that README's first command
// keeps working.
func TestDemo(t *testing.T) {
	Require(t)
	bin := testenv.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./tests/demo", "-bin", bin)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "METALLB_BIN="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"<pending>", "metallb is enabled", "exactly one MAC answers", `reply: "hello from node-b"`, "containerd://",
		"metallb is disabled", "arping 198.51.100.200: 0 replies", "==> done:",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo did not show %q:\n%s", want, out)
		}
	}
}
