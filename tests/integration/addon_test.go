package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// addonsFile is the schema MicroK8s reads from an addons repository.
type addonsFile struct {
	Root *struct {
		Description string `yaml:"description"`
		Addons      []struct {
			Name          string   `yaml:"name"`
			Description   string   `yaml:"description"`
			Version       string   `yaml:"version"`
			CheckStatus   string   `yaml:"check_status"`
			Architectures []string `yaml:"supported_architectures"`
			Confinement   string   `yaml:"confinement"`
		} `yaml:"addons"`
	} `yaml:"microk8s-addons"`
}

// validateAddonsRepo applies the checks MicroK8s applies when a repository
// is added: addons.yaml with its required fields, known architectures, and
// executable enable and disable hooks for every addon.
func validateAddonsRepo(dir string) []string {
	var problems []string
	b, err := os.ReadFile(filepath.Join(dir, "addons.yaml"))
	if err != nil {
		return []string{err.Error()}
	}
	var f addonsFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return []string{"addons.yaml: " + err.Error()}
	}
	if f.Root == nil {
		return []string{"addons.yaml: no microk8s-addons key"}
	}
	if f.Root.Description == "" {
		problems = append(problems, "microk8s-addons.description is empty")
	}
	if len(f.Root.Addons) == 0 {
		problems = append(problems, "microk8s-addons.addons is empty")
	}
	for i, a := range f.Root.Addons {
		for field, v := range map[string]string{"name": a.Name, "description": a.Description, "version": a.Version, "check_status": a.CheckStatus} {
			if v == "" {
				problems = append(problems, fmt.Sprintf("addons[%d].%s is empty", i, field))
			}
		}
		if len(a.Architectures) == 0 {
			problems = append(problems, fmt.Sprintf("addons[%d].supported_architectures is empty", i))
		}
		for _, arch := range a.Architectures {
			if !slices.Contains([]string{"amd64", "arm64", "s390x", "ppc64le"}, arch) {
				problems = append(problems, fmt.Sprintf("addons[%d]: unknown architecture %q", i, arch))
			}
		}
		if a.Confinement != "" && a.Confinement != "strict" && a.Confinement != "classic" {
			problems = append(problems, fmt.Sprintf("addons[%d]: confinement %q", i, a.Confinement))
		}
		for _, hook := range []string{"enable", "disable"} {
			p := filepath.Join(dir, "addons", a.Name, hook)
			fi, err := os.Stat(p)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			case fi.Mode()&0o111 == 0:
				problems = append(problems, p+" is not executable")
			}
		}
	}
	return problems
}

func TestAddonsRepository(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, hook := range []string{"enable", "disable"} {
		if fi, err := os.Stat(filepath.Join(root, hook)); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s hook at the repository root is missing or not executable (%v)", hook, err)
		}
	}
	out := filepath.Join(t.TempDir(), "repo")
	if b, err := exec.Command(filepath.Join(root, "addon", "make-repo.sh"), out).CombinedOutput(); err != nil {
		t.Fatalf("make-repo: %v\n%s", err, b)
	}
	if problems := validateAddonsRepo(out); len(problems) > 0 {
		t.Errorf("MicroK8s would refuse the repository:\n%s", strings.Join(problems, "\n"))
	}
	// The hooks in the repository run their own binary.
	b, err := exec.Command(filepath.Join(out, "addons", "metallb", "enable"), "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "Install metallb with a layer2 pool") {
		t.Errorf("enable --help from the addons repository: %v\n%s", err, b)
	}
	if b, err := exec.Command("git", "-C", out, "log", "--oneline").CombinedOutput(); err != nil || !strings.Contains(string(b), "metallb addon") {
		t.Errorf("the repository is not committed: %v\n%s", err, b)
	}

	// The validator itself refuses what MicroK8s refuses.
	bad := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bad, "addons", "metallb"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(bad, "addons.yaml"), []byte("microk8s-addons:\n  description: x\n  addons:\n    - name: metallb\n      description: y\n      version: \"1\"\n      check_status: z\n      supported_architectures: [riscv64]\n"), 0o644)
	_ = os.WriteFile(filepath.Join(bad, "addons", "metallb", "enable"), []byte("#!/bin/sh\n"), 0o644)
	got := validateAddonsRepo(bad)
	if len(got) != 3 {
		t.Errorf("bad repository: %v, want unknown architecture, enable not executable, disable missing", got)
	}
}
