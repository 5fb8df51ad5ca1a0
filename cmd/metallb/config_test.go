package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	good := "address-pools:\n- name: default\n  protocol: layer2\n  addresses: [192.168.1.200-192.168.1.220]\n"
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: metallb-system\ndata:\n  config: |\n    address-pools:\n    - name: default\n      protocol: layer2\n      addresses: [192.168.1.220-192.168.1.200]\n"
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string
		err   string
	}{
		{name: "good file", args: []string{"-f", write("good.yaml", good)}, code: 0,
			out: "ok\n  pool \"default\": layer2, IPv4, 21 addresses (192.168.1.200-192.168.1.220)\n"},
		{name: "stdin", stdin: good, code: 0,
			out: "ok\n  pool \"default\": layer2, IPv4, 21 addresses (192.168.1.200-192.168.1.220)\n"},
		{name: "empty", stdin: "", code: 0, out: "ok\n  no address pools: LoadBalancer Services will stay <pending>\n"},
		{name: "manifest lines point into the manifest", args: []string{"-f", write("cm.yaml", manifest)}, code: 1,
			err: "" + filepath.Join(dir, "cm.yaml") + ": 1 error(s):\n  line 11: address-pools[0] (default).addresses[0]: 192.168.1.220-192.168.1.200: start is after end\n"},
		{name: "bad stdin", stdin: "address-pools:\n- name: x\n", code: 1,
			err: "standard input: 2 error(s):\n  line 2: address-pools[0] (x): protocol is required: layer2 or bgp\n  line 2: address-pools[0] (x): addresses is required (e.g. addresses: [192.168.1.200-192.168.1.220])\n"},
		{name: "the file as an argument", args: []string{write("arg.yaml", good)}, code: 0,
			out: "ok\n  pool \"default\": layer2, IPv4, 21 addresses (192.168.1.200-192.168.1.220)\n"},
		{name: "a file given twice", args: []string{"a.yaml", "-f", "b.yaml"}, code: 1,
			err: "metallb: a file given twice (a.yaml and -f b.yaml): give one\n"},
		{name: "a Namespace then the ConfigMap: each document", args: []string{write("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: metallb-system\n---\n"+strings.Replace(manifest, "192.168.1.220-192.168.1.200", "192.168.1.200-192.168.1.220", 1))}, code: 0,
			out: filepath.Join(dir, "ns.yaml") + ", line 1 (Namespace/metallb-system): not a metallb configuration, skipped\n" +
				filepath.Join(dir, "ns.yaml") + ", line 6 (ConfigMap/config): ok\n  pool \"default\": layer2, IPv4, 21 addresses (192.168.1.200-192.168.1.220)\n"},
		{name: "a valid config followed by a broken one is not ok", stdin: good + "---\naddress-pools:\n- name: x\n", code: 1,
			out: "standard input, line 1 (config): ok\n  pool \"default\": layer2, IPv4, 21 addresses (192.168.1.200-192.168.1.220)\n",
			err: "standard input, line 6 (config): 2 error(s):\n  line 7: address-pools[0] (x): protocol is required: layer2 or bgp\n  line 7: address-pools[0] (x): addresses is required (e.g. addresses: [192.168.1.200-192.168.1.220])\n"},
		{name: "MetalLB's layer2 example: its resources as one configuration", stdin: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: first-pool\n  namespace: metallb-system\nspec:\n  addresses: [192.168.1.240-192.168.1.250]\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: example\n", code: 0,
			out: "standard input (metallb.io resources (MetalLB v0.13+ format): IPAddressPool/first-pool, L2Advertisement/example): ok\n  pool \"first-pool\": layer2, IPv4, 11 addresses (192.168.1.240-192.168.1.250)\n"},
		{name: "a resource's error names its line and field", stdin: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\nspec:\n  addresses: [192.168.1.250-192.168.1.240]\n", code: 1,
			err: "standard input (metallb.io resources (MetalLB v0.13+ format): IPAddressPool/p): 1 error(s):\n  line 6: IPAddressPool/p: spec.addresses[0]: 192.168.1.250-192.168.1.240: start is after end\n"},
		{name: "no configuration at all", stdin: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n", code: 1,
			err: "standard input: Namespace/x holds no metallb configuration (a v0.12 config, a ConfigMap with a config key, or metallb.io resources)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"config", "validate"}, tc.args...),
				streams{in: strings.NewReader(tc.stdin), out: &out, err: &errb})
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, errb.String())
			}
			if diff := cmp.Diff(tc.out, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.err, errb.String()); diff != "" {
				t.Errorf("standard error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigValidateJSON(t *testing.T) {
	in := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n---\naddress-pools:\n- {name: a, protocol: layer2, addresses: [192.0.2.0/30]}\n---\naddress-pools:\n- {name: b}\n"
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"config", "validate", "-o", "json"}, streams{in: strings.NewReader(in), out: &out, err: &errb})
	if code != 1 {
		t.Errorf("exit %d, want 1 (one document is invalid); stderr %q", code, errb.String())
	}
	var v validation
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var got []string
	for _, d := range v.Documents {
		got = append(got, fmt.Sprintf("%d %s checked=%v valid=%v pools=%d errors=%d", d.Line, d.What, d.Checked, d.Valid, len(d.Pools), len(d.Errors)))
	}
	want := []string{"1 Namespace/x checked=false valid=false pools=0 errors=0", "6 config checked=true valid=true pools=1 errors=0", "9 config checked=true valid=false pools=0 errors=2"}
	if diff := cmp.Diff(want, got); diff != "" || v.Valid || v.Source != "standard input" {
		t.Errorf("documents (-want +got):\n%s (valid %v, source %q)", diff, v.Valid, v.Source)
	}
	if e := v.Documents[2].Errors[0]; e.Line != 10 {
		t.Errorf("first error %+v, want it on line 10 of the input", e)
	}
}
