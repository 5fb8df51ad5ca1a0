package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the metallb binary of this checkout once per test process and
// returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "metallb-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "metallb")
		buildErr = BuildStatic("./cmd/metallb", binPath)
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// BuildStatic builds a package of this checkout into out as a static
// binary (CGO_ENABLED=0, like scripts/build.sh, so that it can be packaged
// as an image), with extra go build flags.
func BuildStatic(pkg, out string, flags ...string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", append(append([]string{"build", "-o", out}, flags...), pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
