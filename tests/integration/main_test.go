// Package integration holds tests that run against a real kube-apiserver,
// etcd and kube-controller-manager started by tests/testenv.
package integration

import (
	"os"
	"testing"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

var cluster testenv.Shared

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &cluster))
}
