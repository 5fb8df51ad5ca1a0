package config

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitDocuments(t *testing.T) {
	file := `---
apiVersion: v1
kind: Namespace
metadata:
  name: metallb-system
---
# the ConfigMap
apiVersion: v1
kind: ConfigMap
metadata:
  name: config
  namespace: metallb-system
data:
  config: |
    address-pools:
    - name: default
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: first-pool
spec:
  addresses: [192.168.1.240-192.168.1.250]
...
address-pools: []
--- # empty
`
	docs, err := SplitDocuments([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	type sum struct {
		Line         int
		What, Config string
		Offset       int
		MetalLB      bool
	}
	var got []sum
	for _, d := range docs {
		got = append(got, sum{d.Line, d.What(), string(d.Config), d.Offset, d.MetalLBResource()})
	}
	want := []sum{
		{Line: 2, What: "Namespace/metallb-system"},
		{Line: 8, What: "ConfigMap/config", Config: "address-pools:\n- name: default\n", Offset: 14},
		{Line: 18, What: "IPAddressPool/first-pool", MetalLB: true},
		{Line: 25, What: "config", Config: "address-pools: []\n", Offset: 24},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
	// Error lines of a config in the ConfigMap point into the file.
	_, perr := Parse(docs[1].Config)
	var es Errors
	if !errors.As(ShiftLines(perr, docs[1].Offset), &es) || es[0].Line != 16 {
		t.Errorf("error %v, want it on line 16 of the file", perr)
	}
}

func TestSplitDocumentsNotYAML(t *testing.T) {
	_, err := SplitDocuments([]byte("address-pools: []\n---\n: : [\n"))
	if err == nil || err.Error()[:7] != "line 3:" {
		t.Errorf("error %v, want one naming line 3", err)
	}
}

// FuzzSplitDocuments: any input splits without panicking, and every
// document's lines lie within the file.
func FuzzSplitDocuments(f *testing.F) {
	f.Add([]byte("a: 1\n---\nkind: ConfigMap\ndata:\n  config: |\n    x: 1\n"))
	f.Add([]byte("---\n...\n--- x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		docs, _ := SplitDocuments(b)
		lines := 1 + len(b)
		for _, d := range docs {
			if d.Line < 1 || d.Line > lines || d.Offset < 0 || d.Offset > lines {
				t.Fatalf("document at line %d, offset %d, in %d bytes", d.Line, d.Offset, len(b))
			}
		}
	})
}

func TestApplyResources(t *testing.T) {
	pool := func(name, addr string) string {
		return "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: " + name + "}\nspec: {addresses: [" + addr + "]}\n"
	}
	const adv = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: web}\n"
	base := [][]byte{[]byte(pool("web", "192.0.2.0/28")), []byte(adv)}
	for _, tc := range []struct {
		name, edits string
		want        []string
	}{
		{"the same kind and name: replaced in place", pool("web", "192.0.2.0/27"), []string{pool("web", "192.0.2.0/27"), adv}},
		{"another name: added", pool("db", "198.51.100.0/28"), []string{pool("web", "192.0.2.0/28"), adv, pool("db", "198.51.100.0/28")}},
		{"the same name, another kind: added", "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: web}\n",
			[]string{pool("web", "192.0.2.0/28"), adv, "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: web}\n"}},
		{"other objects and the v0.12 config: left out", "address-pools: []\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
			[]string{pool("web", "192.0.2.0/28"), adv}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := SplitDocuments([]byte(tc.edits))
			if err != nil {
				t.Fatal(err)
			}
			out, err := ApplyResources(base, docs)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range out {
				got = append(got, string(o))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
