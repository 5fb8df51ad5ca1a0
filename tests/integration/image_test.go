package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/image"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// startContainerd runs a private containerd for the test and returns the
// ctr command that targets its k8s.io namespace.
func startContainerd(t *testing.T) []string {
	t.Helper()
	if m := testenv.ContainerdMissing(); m != "" {
		if testenv.InCI() {
			t.Fatal("the image import test " + m)
		}
		t.Skip("the image import test " + m)
	}
	c, err := testenv.StartContainerd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log:\n%s", c.Log())
		}
		c.Stop()
	})
	return c.Ctr
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
	out, err := testenv.Ctr(context.Background(), ctr, "images", "ls", "-q").CombinedOutput()
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
	out, err = testenv.Ctr(ctx, ctr, "run", "--rm", ref, fmt.Sprintf("mlb-image-test-%d", os.Getpid()), image.Path, "version").CombinedOutput()
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
