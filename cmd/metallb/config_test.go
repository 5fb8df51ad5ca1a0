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

func TestConfigConvert(t *testing.T) {
	manifest := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: metallb-system\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: metallb-system\ndata:\n  config: |\n" +
		"    peers:\n    - {peer-address: 198.51.100.254, peer-asn: 64501, my-asn: 64500, max-prefix: 100}\n" +
		"    address-pools:\n    - {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}\n" +
		"    - {name: edge, protocol: bgp, addresses: [203.0.113.0/28]}\n"
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		// validated is what config validate says of the output; empty
		// when the conversion fails.
		validated string
		err       string
	}{
		{name: "a ConfigMap manifest: the resources mean the same", stdin: manifest, code: 0,
			validated: "ok\n  pool \"web\": layer2, IPv4, 11 addresses (192.0.2.10-192.0.2.20)\n  pool \"edge\": bgp, IPv4, 16 addresses (203.0.113.0/28)\n",
			err:       "note: BGPPeer peer-198-51-100-254: max-prefix 100 has no field in BGPPeer and is dropped (the session accepts any number of prefixes)\n"},
		{name: "another namespace", args: []string{"--to-namespace", "lb"}, stdin: "address-pools:\n- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}\n", code: 0,
			validated: "ok\n  pool \"web\": layer2, IPv4, 11 addresses (192.0.2.10-192.0.2.20)\n"},
		{name: "resources already", stdin: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\nspec:\n  addresses: [192.0.2.1/32]\n", code: 1,
			err: "standard input: IPAddressPool/p is a metallb.io resource already: skipped\nmetallb: standard input holds no v0.12 config (a bare config, or a ConfigMap with a config key)\n"},
		{name: "two configs", stdin: "address-pools: []\n---\naddress-pools: []\n", code: 1,
			err: "metallb: standard input holds 2 configs: give one file per configuration\n"},
		{name: "an invalid config is not converted", stdin: "address-pools:\n- name: x\n", code: 1,
			err: "metallb: standard input is not valid, so it is not converted (metallb config validate says more):\n2 error(s):\n  line 2: address-pools[0] (x): protocol is required: layer2 or bgp\n  line 2: address-pools[0] (x): addresses is required (e.g. addresses: [192.168.1.200-192.168.1.220])\n"},
		{name: "a name Kubernetes refuses", stdin: "address-pools:\n- {name: Web_Pool, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}\n", code: 1,
			err: "metallb: standard input cannot be written as metallb.io resources:\n1 error(s):\n  IPAddressPool \"Web_Pool\": not a valid object name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit): rename it in the ConfigMap first\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"config", "convert"}, tc.args...),
				streams{in: strings.NewReader(tc.stdin), out: &out, err: &errb})
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, errb.String())
			}
			if diff := cmp.Diff(tc.err, errb.String()); diff != "" {
				t.Errorf("standard error (-want +got):\n%s", diff)
			}
			if tc.validated == "" {
				if out.Len() > 0 {
					t.Errorf("output %q, want none", out.String())
				}
				return
			}
			var vout, verr bytes.Buffer
			if code := run(context.Background(), []string{"config", "validate"}, streams{in: &out, out: &vout, err: &verr}); code != 0 {
				t.Fatalf("validate of the output: exit %d: %s", code, verr.String())
			}
			got := vout.String()
			if i := strings.Index(got, "): ok\n"); i >= 0 {
				got = got[i+3:] // drop the list of resources validated
			}
			if diff := cmp.Diff(tc.validated, got); diff != "" {
				t.Errorf("validate of the output (-want +got):\n%s", diff)
			}
		})
	}
}
