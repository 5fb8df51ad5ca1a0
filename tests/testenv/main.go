package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI (CI=true), where a missing control
// plane is a failure, never a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Shared is one control plane shared by the tests of a package.
type Shared struct {
	Env *Env
	err error
}

// Main starts a shared control plane, runs the package's tests and stops it.
// Call it from TestMain: os.Exit(testenv.Main(m, &shared)).
//
// When the binaries are missing, tests that call Require skip with a message
// saying how to build them, except under CI=true, where Main fails at once.
// In a child process of Flood.RunApart, Main runs that flood instead.
func Main(m *testing.M, s *Shared) int {
	if code, ok := FloodChild(); ok {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	env, err := Start(ctx, Options{})
	cancel()
	switch {
	case err == nil:
		s.Env = env
	case errors.Is(err, ErrNoBinaries) && !InCI():
		s.err = err
	default:
		fmt.Fprintf(os.Stderr, "testenv: cannot start the control plane: %v\n", err)
		return 1
	}
	code := m.Run()
	env.Stop()
	return code
}

// Require returns the shared control plane, or skips the test (fails under
// CI=true) when it could not be started.
func (s *Shared) Require(t testing.TB) *Env {
	t.Helper()
	if s.Env == nil {
		if InCI() {
			t.Fatalf("control plane unavailable under CI: %v", s.err)
		}
		t.Skipf("needs the real control plane: %v", s.err)
	}
	return s.Env
}
