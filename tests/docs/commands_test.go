// Package docs keeps the commands README, docs/ and the help texts give
// true to how MicroK8s reads them.
package docs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// coreAddons are the addons of MicroK8s's core repository, present on
// every MicroK8s (its addons.yaml).
var coreAddons = strings.Fields("dns rbac ingress hostpath-storage storage registry metrics-server nvidia gpu helm helm3 metallb host-access ha-cluster mayastor prometheus observability community cert-manager kube-ovn minio cis-hardening rook-ceph")

// ourRepo is the name README adds this repository under.
const ourRepo = "lab"

type addon struct{ repo, name string }

// resolve is MicroK8s's parse_xable_single_arg: "(repo/)name(:args)",
// the repository inferred only when exactly one has the name.
func resolve(arg string, available []addon) (addon, error) {
	name, _, _ := strings.Cut(arg, ":")
	parts := strings.Split(name, "/")
	switch len(parts) {
	case 2:
		for _, a := range available {
			if a.repo == parts[0] && a.name == parts[1] {
				return a, nil
			}
		}
		return addon{}, fmt.Errorf("Addon %s/%s not found", parts[0], parts[1])
	case 1:
		var match []addon
		for _, a := range available {
			if a.name == name {
				match = append(match, a)
			}
		}
		switch len(match) {
		case 0:
			return addon{}, fmt.Errorf("Addon %s was not found in any repository", name)
		case 1:
			return match[0], nil
		}
		return addon{}, errors.New("Addon " + name + " exists in more than repository. Please explicitly specify the repository")
	}
	return addon{}, fmt.Errorf("Invalid addon name %s", name)
}

var command = regexp.MustCompile("microk8s (enable|disable) +([^\\s`'\"()<>\\\\,;]+)")

// Every "microk8s enable|disable X" in README, docs/ and the Go sources'
// texts works on a MicroK8s that has the core repository beside ours: it
// resolves, and a metallb it names is ours unless it says core/metallb.
func TestMicroK8sCommandsResolve(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var available []addon
	for _, n := range coreAddons {
		available = append(available, addon{"core", n})
	}
	available = append(available, addon{ourRepo, "metallb"})
	var files []string
	files = append(files, filepath.Join(root, "README.md"))
	for _, dir := range []string{"docs", "cmd", "pkg", "addon"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if strings.HasSuffix(p, ".md") || strings.HasSuffix(p, ".sh") || (strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go")) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "exists in more than repository") {
				continue // the text showing what plain "metallb" answers
			}
			for _, m := range command.FindAllStringSubmatch(line, -1) {
				arg := m[2]
				if strings.HasPrefix(arg, "-") || arg == "ADDON" || strings.Contains(arg, "%") {
					continue
				}
				n++
				a, err := resolve(arg, available)
				switch {
				case err != nil:
					t.Errorf("%s:%d: %q: %v", rel, i+1, m[0], err)
				case a.name == "metallb" && a.repo != ourRepo && !strings.HasPrefix(arg, "core/"):
					t.Errorf("%s:%d: %q runs core's metallb", rel, i+1, m[0])
				}
			}
		}
	}
	t.Logf("%d commands checked in %d files", n, len(files))
	if n < 10 {
		t.Errorf("only %d commands found: is the pattern still right?", n)
	}
}
