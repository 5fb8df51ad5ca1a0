package manifests_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/install"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

func TestMonitoringObjects(t *testing.T) {
	b, err := manifests.Render(manifests.Values{Namespace: "metallb-system", Image: "x", Config: "address-pools: []\n", WithMonitoring: true})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	for _, o := range objs {
		got[o.GetKind()+"/"+o.GetName()] = o.Object
	}
	for _, k := range []string{"PodMonitor/controller", "PodMonitor/speaker", "PrometheusRule/metallb", "ConfigMap/metallb-dashboard"} {
		if got[k] == nil {
			t.Errorf("missing %s", k)
		}
	}
	groups := got["PrometheusRule/metallb"]["spec"].(map[string]any)["groups"].([]any)
	if n := len(groups[0].(map[string]any)["rules"].([]any)); n != 8 {
		t.Errorf("PrometheusRule has %d rules, want 8", n)
	}
	var dash map[string]any
	if err := json.Unmarshal([]byte(got["ConfigMap/metallb-dashboard"]["data"].(map[string]any)["metallb.json"].(string)), &dash); err != nil {
		t.Errorf("the dashboard ConfigMap holds no valid JSON: %v", err)
	}
	if _, ok := got["ConfigMap/metallb-dashboard"]["metadata"].(map[string]any)["labels"].(map[string]any)["grafana_dashboard"]; !ok {
		t.Error("the dashboard lacks the grafana_dashboard label the sidecar loads")
	}
	plain, err := manifests.Render(manifests.Values{Namespace: "metallb-system", Image: "x", Config: "address-pools: []\n"})
	if err != nil || strings.Contains(string(plain), "monitoring.coreos.com") {
		t.Errorf("without the CRDs the monitoring objects are rendered anyway (%v)", err)
	}
}

// TestPromtool: the rules pass promtool check rules, and every alert fires
// in its promtool test case (Debian's prometheus package ships promtool).
func TestPromtool(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		if testenv.InCI() {
			t.Fatal("promtool is missing (scripts/setup.sh installs Debian's prometheus)")
		}
		t.Skip("promtool is missing (scripts/setup.sh installs Debian's prometheus)")
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = "monitoring"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

var (
	metricRef = regexp.MustCompile(`\bmetallb_[a-z0-9_]+`)
	optsDecl  = regexp.MustCompile(`Subsystem: "([a-z0-9_]+)", Name: "([a-z0-9_]+)"`)
	descDecl  = regexp.MustCompile(`metrics\.Namespace\+"(_[a-z0-9_]+)"`)
)

// definedMetrics are the metric names the code declares.
func definedMetrics(t *testing.T) []string {
	var out []string
	err := filepath.WalkDir("../pkg", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range optsDecl.FindAllStringSubmatch(string(b), -1) {
			out = append(out, "metallb_"+m[1]+"_"+m[2])
		}
		for _, m := range descDecl.FindAllStringSubmatch(string(b), -1) {
			out = append(out, "metallb"+m[1])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The dashboard's queries and the alerts name only metrics the code
// exports.
func TestMonitoringNamesOnlyMetricsThatExist(t *testing.T) {
	defined := definedMetrics(t)
	if len(defined) < 15 {
		t.Fatalf("found only %d metric declarations: %v", len(defined), defined)
	}
	for _, f := range []string{"monitoring/rules.yaml", "monitoring/dashboard.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metricRef.FindAllString(string(b), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if !slices.Contains(defined, name) && !slices.Contains(defined, base) {
				t.Errorf("%s names %s, which no code exports", f, name)
			}
		}
	}
}
