package manifests_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/install"
)

func render(t *testing.T) map[string]map[string]any {
	t.Helper()
	return renderWith(t, manifests.Values{})
}

func renderWith(t *testing.T, v manifests.Values) map[string]map[string]any {
	t.Helper()
	v.Namespace, v.Image, v.Config = "metallb-system", "localhost/microk8s-metallb:v1-abc", "address-pools: []\n"
	b, err := manifests.Render(v)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, o := range objs {
		if o.GetLabels()["app.kubernetes.io/part-of"] != manifests.PartOf {
			t.Errorf("%s %s lacks the part-of label disable selects on", o.GetKind(), o.GetName())
		}
		out[o.GetKind()+"/"+o.GetName()] = o.Object
	}
	return out
}

func TestRenderedObjects(t *testing.T) {
	objs := render(t)
	var names []string
	for k := range objs {
		names = append(names, k)
	}
	for _, want := range []string{
		"Namespace/metallb-system", "ServiceAccount/controller", "ServiceAccount/speaker",
		"ClusterRole/metallb-system:controller", "ClusterRole/metallb-system:speaker",
		"ClusterRoleBinding/metallb-system:controller", "ClusterRoleBinding/metallb-system:speaker",
		"Role/controller", "Role/speaker", "RoleBinding/controller", "RoleBinding/speaker",
		"ConfigMap/config", "Deployment/metallb-controller", "DaemonSet/metallb-speaker",
		"ServiceAccount/metrics-reader", "ClusterRole/metallb-system:metrics-reader", "ClusterRoleBinding/metallb-system:metrics-reader",
		"ValidatingAdmissionPolicy/metallb-system-leases", "ValidatingAdmissionPolicyBinding/metallb-system-leases",
		"ValidatingAdmissionPolicy/metallb-system-guard", "ValidatingAdmissionPolicyBinding/metallb-system-guard",
		"ValidatingAdmissionPolicy/metallb-system-pools", "ValidatingAdmissionPolicyBinding/metallb-system-pools",
		"ValidatingAdmissionPolicy/metallb-system-l2status", "ValidatingAdmissionPolicyBinding/metallb-system-l2status",
		"ValidatingAdmissionPolicy/metallb-system-states", "ValidatingAdmissionPolicyBinding/metallb-system-states",
		"Service/metallb-webhook", "ValidatingWebhookConfiguration/metallb-system-validation",
		"CustomResourceDefinition/ipaddresspools.metallb.io", "CustomResourceDefinition/l2advertisements.metallb.io",
		"CustomResourceDefinition/bgpadvertisements.metallb.io", "CustomResourceDefinition/bgppeers.metallb.io",
		"CustomResourceDefinition/communities.metallb.io", "CustomResourceDefinition/bfdprofiles.metallb.io",
		"CustomResourceDefinition/servicel2statuses.metallb.io", "CustomResourceDefinition/servicebgpstatuses.metallb.io",
		"CustomResourceDefinition/configurationstates.metallb.io",
	} {
		if objs[want] == nil {
			t.Errorf("missing %s (have %v)", want, names)
		}
	}
	if len(objs) != 38 {
		t.Errorf("%d objects, want 38: %v", len(objs), names)
	}
}

// rules returns "group/resource verb" strings of a role.
func rules(o map[string]any) []string {
	var out []string
	rs, _ := o["rules"].([]any)
	for _, r := range rs {
		m := r.(map[string]any)
		for _, g := range m["apiGroups"].([]any) {
			for _, res := range m["resources"].([]any) {
				for _, v := range m["verbs"].([]any) {
					out = append(out, g.(string)+"/"+res.(string)+" "+v.(string))
				}
			}
		}
	}
	return out
}

func TestLeastPrivilege(t *testing.T) {
	objs := render(t)
	for _, r := range rules(objs["ClusterRole/metallb-system:speaker"]) {
		if strings.HasPrefix(r, "/services") && !strings.HasSuffix(r, " get") && !strings.HasSuffix(r, " list") && !strings.HasSuffix(r, " watch") {
			t.Errorf("the speaker may write Services: %s", r)
		}
	}
	for _, kind := range []string{"ClusterRole/metallb-system:controller", "ClusterRole/metallb-system:speaker", "Role/controller", "Role/speaker"} {
		for _, r := range rules(objs[kind]) {
			if kind == "Role/speaker" && (r == "/secrets list" || r == "/secrets watch") {
				continue // BGPPeers' passwordSecret (pkg/speaker/secrets.go)
			}
			if strings.Contains(r, "secrets") || strings.Contains(r, "*") {
				t.Errorf("%s grants %s", kind, r)
			}
		}
	}
	// The controller's Lease rights: create (a name cannot be known before
	// it exists), and the rest on its own Lease only.
	for _, r := range objs["Role/controller"]["rules"].([]any) {
		m := r.(map[string]any)
		if !slices.Contains(m["resources"].([]any), any("leases")) {
			continue
		}
		names, _ := m["resourceNames"].([]any)
		if verbs := fmt.Sprint(m["verbs"]); verbs != "[create]" && fmt.Sprint(names) != "[metallb-controller]" {
			t.Errorf("the controller may %s Leases %v", verbs, names)
		}
	}
	// The only namespaced writes on ConfigMaps: the controller's update of
	// its own accepted copy and its patch of the operator's (to remove the
	// one-edit allow annotation), by name. Speakers write none.
	for _, kind := range []string{"Role/controller", "Role/speaker"} {
		for _, r := range objs[kind]["rules"].([]any) {
			m := r.(map[string]any)
			if !slices.Contains(m["resources"].([]any), any("configmaps")) {
				continue
			}
			var writes []any
			for _, v := range m["verbs"].([]any) {
				if v != "get" && v != "list" && v != "watch" {
					writes = append(writes, v)
				}
			}
			if len(writes) == 0 {
				continue
			}
			names, _ := m["resourceNames"].([]any)
			rule := fmt.Sprint(writes, names)
			if kind != "Role/controller" || (rule != "[update] [config-accepted]" && rule != "[patch] [config]") {
				t.Errorf("%s may %v ConfigMaps %v", kind, writes, names)
			}
		}
	}
	d := objs["Deployment/metallb-controller"]
	pod := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	c := pod["containers"].([]any)[0].(map[string]any)
	sc := c["securityContext"].(map[string]any)
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("controller securityContext %v", sc)
	}
	if drop := sc["capabilities"].(map[string]any)["drop"].([]any); len(drop) != 1 || drop[0] != "ALL" {
		t.Errorf("controller drops %v", drop)
	}
	if pod["securityContext"].(map[string]any)["runAsNonRoot"] != true {
		t.Error("controller may run as root")
	}
	ds := objs["DaemonSet/metallb-speaker"]
	spod := ds["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	if spod["hostNetwork"] != true {
		t.Error("speaker is not on the host network")
	}
	scap := spod["containers"].([]any)[0].(map[string]any)["securityContext"].(map[string]any)["capabilities"].(map[string]any)
	if add := scap["add"].([]any); len(add) != 1 || add[0] != "NET_RAW" {
		t.Errorf("speaker adds capabilities %v, want only NET_RAW", add)
	}
	for name, p := range map[string]map[string]any{"controller": pod, "speaker": spod} {
		if sp := fmt.Sprint(p["securityContext"].(map[string]any)["seccompProfile"]); sp != "map[type:RuntimeDefault]" {
			t.Errorf("%s seccompProfile %s, want RuntimeDefault", name, sp)
		}
		limits := p["containers"].([]any)[0].(map[string]any)["resources"].(map[string]any)["limits"].(map[string]any)
		if limits["cpu"] == nil || limits["memory"] == nil {
			t.Errorf("%s limits %v, want cpu and memory", name, limits)
		}
		// The runtime's soft limit sits under the container's, with room
		// for what is not heap (stacks, binary, buffers).
		soft, hard := envValue(p, "GOMEMLIMIT"), fmt.Sprint(limits["memory"])
		if soft == "" {
			t.Errorf("%s sets no GOMEMLIMIT", name)
		} else if s, h := mebibytes(t, strings.TrimSuffix(soft, "B")), mebibytes(t, hard); s > h*85/100 {
			t.Errorf("%s GOMEMLIMIT %s, want at most 85 %% of the %s limit", name, soft, hard)
		}
	}
}

// --service-bgp-status reaches the speakers' arguments only when asked for.
func TestServiceBGPStatusFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		ds := renderWith(t, manifests.Values{ServiceBGPStatus: on})["DaemonSet/metallb-speaker"]
		c := ds["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
		var args []string
		for _, a := range c["args"].([]any) {
			args = append(args, a.(string))
		}
		if got := slices.Contains(args, "--service-bgp-status"); got != on {
			t.Errorf("ServiceBGPStatus %v: speaker args %v", on, args)
		}
	}
}

// --traffic-stats adds the counting container, the only one with
// NET_ADMIN and without the API token; without it no container has
// NET_ADMIN anywhere.
func TestTrafficStatsFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		objs := renderWith(t, manifests.Values{TrafficStats: on})
		for name, obj := range objs {
			b, _ := yaml.Marshal(obj)
			if strings.Contains(string(b), "NET_ADMIN") != (on && name == "DaemonSet/metallb-speaker") {
				t.Errorf("TrafficStats %v: NET_ADMIN in %s: %v", on, name, strings.Contains(string(b), "NET_ADMIN"))
			}
		}
		ds := objs["DaemonSet/metallb-speaker"]
		pod := ds["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		var got []string
		for _, c := range pod["containers"].([]any) {
			c := c.(map[string]any)
			caps := c["securityContext"].(map[string]any)["capabilities"].(map[string]any)["add"].([]any)
			var mounts []string
			for _, m := range asList(c["volumeMounts"]) {
				mounts = append(mounts, m.(map[string]any)["mountPath"].(string))
			}
			var args []string
			for _, a := range c["args"].([]any) {
				if a := a.(string); strings.HasPrefix(a, "--traffic-dir") || a == "traffic-counter" {
					args = append(args, a)
				}
			}
			got = append(got, fmt.Sprintf("%s caps=%v mounts=%v args=%v", c["name"], caps, mounts, args))
		}
		want := []string{"speaker caps=[NET_RAW] mounts=[] args=[]"}
		if on {
			want = []string{
				"speaker caps=[NET_RAW] mounts=[/run/metallb /var/run/secrets/kubernetes.io/serviceaccount] args=[--traffic-dir=/run/metallb]",
				"traffic caps=[NET_ADMIN] mounts=[/run/metallb] args=[traffic-counter]",
			}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("TrafficStats %v (-want +got):\n%s", on, d)
		}
		if auto, ok := pod["automountServiceAccountToken"]; ok != on || (on && auto != false) {
			t.Errorf("TrafficStats %v: automountServiceAccountToken %v", on, auto)
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func TestRenderNeedsValues(t *testing.T) {
	if _, err := manifests.Render(manifests.Values{Namespace: "x"}); err == nil {
		t.Error("rendered without image and config")
	}
}

// envValue is the literal value of the variable name in the pod's first
// container, or "".
func envValue(pod map[string]any, name string) string {
	env, _ := pod["containers"].([]any)[0].(map[string]any)["env"].([]any)
	for _, e := range env {
		if e := e.(map[string]any); e["name"] == name {
			v, _ := e["value"].(string)
			return v
		}
	}
	return ""
}

// mebibytes reads a quantity written in Mi or Gi.
func mebibytes(t *testing.T, q string) int {
	t.Helper()
	var n int
	var unit string
	if _, err := fmt.Sscanf(q, "%d%s", &n, &unit); err != nil {
		t.Fatalf("quantity %q: %v", q, err)
	}
	switch unit {
	case "Mi":
		return n
	case "Gi":
		return n << 10
	}
	t.Fatalf("quantity %q: unit %q, want Mi or Gi", q, unit)
	return 0
}
