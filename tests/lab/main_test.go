package lab

import (
	"os"
	"testing"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

func TestMain(m *testing.M) {
	if code, ok := testenv.FloodChild(); ok {
		os.Exit(code) // a flood started by a test of this package
	}
	os.Exit(m.Run())
}
