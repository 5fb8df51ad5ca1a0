// Package arch checks the shape the README's architecture section
// promises: the pure cores import nothing that touches the cluster, the
// network or the host.
package arch

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// pure are the packages README calls pure.
var pure = []string{"iprange", "config", "allocator", "election", "announce", "netcheck", "routes", "reload", "traffic"}

// forbidden are import paths (or their prefixes, ending in "/") that a
// pure package may not depend on, even indirectly.
var forbidden = []string{"k8s.io/", "net", "net/http", "crypto/tls", "os/exec",
	"golang.org/x/sys/", "github.com/prometheus/", "github.com/osrg/", "github.com/mdlayher/", "github.com/hashicorp/"}

func TestPureCoresImportNoAdapters(t *testing.T) {
	for _, p := range pure {
		t.Run(p, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "github.com/microk8s-metallb/metallb/pkg/"+p).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				if slices.ContainsFunc(forbidden, func(f string) bool {
					return dep == f || strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)
				}) {
					t.Errorf("pkg/%s depends on %s", p, dep)
				}
			}
		})
	}
}
