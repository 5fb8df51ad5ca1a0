package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/image"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// startContainerd runs a private containerd (its own root, state and
// socket; no CRI, no network) and returns the ctr command that targets the
// kubelet's k8s.io namespace, as MicroK8s's microk8s-ctr.wrapper does.
func startContainerd(t *testing.T) []string {
	t.Helper()
	var missing []string
	for _, tool := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if len(missing) > 0 {
		msg := "the image import test needs " + strings.Join(missing, ", ") + " (scripts/setup.sh installs Debian's containerd)"
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "mlb-containerd-")
	if err != nil {
		t.Fatal(err)
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
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("containerd log:\n%s", b)
		}
		// Snapshots may be mounted by a run; unmount before removing.
		_ = exec.Command("sh", "-c", "grep -o '"+dir+"[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l").Run()
		_ = os.RemoveAll(dir)
	})
	ctr := []string{"ctr", "--address", sock, "--namespace", "k8s.io"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := exec.Command(ctr[0], append(ctr[1:], "version")...).Run(); err == nil {
			return ctr
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not start within 15s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestImageImportIntoContainerd packages the metallb binary, imports it into
// a real containerd as the installer does, and runs it from the image.
func TestImageImportIntoContainerd(t *testing.T) {
	ctr := startContainerd(t)
	bin := testenv.Binary(t)
	ref, err := image.Tag(bin, "v0.0.0-test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ref, image.Repository+":v0.0.0-test-") {
		t.Fatalf("ref %s", ref)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := image.Import(ctx, bin, ref, ctr); err != nil {
		t.Fatal(err)
	}
	t.Logf("built and imported %s in %v", ref, time.Since(start).Round(time.Millisecond))
	out, err := exec.Command(ctr[0], append(ctr[1:], "images", "ls", "-q")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ref) {
		t.Fatalf("image %s not in containerd's k8s.io namespace: %v\n%s", ref, err, out)
	}
	// Importing the same image again is harmless (re-enable).
	if err := image.Import(ctx, bin, ref, ctr); err != nil {
		t.Fatalf("second import: %v", err)
	}
	// The image runs: the binary alone, as the manifests start it.
	if _, err := exec.LookPath("runc"); err != nil {
		t.Logf("runc not installed: not running the image")
		return
	}
	out, err = exec.CommandContext(ctx, ctr[0], append(ctr[1:], "run", "--rm", ref, "mlb-image-test", image.Path, "version")...).CombinedOutput()
	if err != nil {
		t.Fatalf("run %s: %v\n%s", ref, err, out)
	}
	if !strings.Contains(string(out), "metallb") {
		t.Errorf("the image's metallb version printed %q", out)
	}
	t.Logf("ran from the image: %s", strings.TrimSpace(string(out)))
}

func TestImageRefusesDynamicBinary(t *testing.T) {
	if err := image.Static("/bin/sh"); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("Static(/bin/sh) = %v, want a dynamically-linked error", err)
	}
}
