package main

import (
	"bytes"
	"context"
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
	}{
		{name: "good file", args: []string{"-f", write("good.yaml", good)}, code: 0,
			out: "ok\n  pool \"default\": layer2, IPv4, 21 addresses (192.168.1.200-192.168.1.220)\n"},
		{name: "stdin", stdin: good, code: 0,
			out: "ok\n  pool \"default\": layer2, IPv4, 21 addresses (192.168.1.200-192.168.1.220)\n"},
		{name: "empty", stdin: "", code: 0, out: "ok\n  no address pools: LoadBalancer Services will stay <pending>\n"},
		{name: "manifest lines point into the manifest", args: []string{"-f", write("cm.yaml", manifest)}, code: 1,
			out: "" + filepath.Join(dir, "cm.yaml") + ": 1 error(s):\n  line 11: address-pools[0] (default).addresses[0]: 192.168.1.220-192.168.1.200: start is after end\n"},
		{name: "bad stdin", stdin: "address-pools:\n- name: x\n", code: 1,
			out: "standard input: 2 error(s):\n  line 2: address-pools[0] (x): protocol is required: layer2 or bgp\n  line 2: address-pools[0] (x): addresses is required (e.g. addresses: [192.168.1.200-192.168.1.220])\n"},
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
		})
	}
}
