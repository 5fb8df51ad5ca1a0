package config

import (
	"fmt"
	"math/big"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// Family names the IP families a pool holds: "IPv4", "IPv6" or "dual-stack".
func (p *Pool) Family() string {
	var v4, v6 bool
	for _, r := range p.Ranges {
		v4 = v4 || r.Is4()
		v6 = v6 || r.Is6()
	}
	switch {
	case v4 && v6:
		return "dual-stack"
	case v6:
		return "IPv6"
	}
	return "IPv4"
}

// Size returns the number of addresses the pool hands out: those of its
// ranges, less the IPv4 ones ending in .0 or .255 when it avoids them.
func (p *Pool) Size() *big.Int {
	t := p.FamilySize(true)
	return t.Add(t, p.FamilySize(false))
}

// FamilySize is Size counted over the pool's IPv4 (v4) or IPv6 ranges only.
func (p *Pool) FamilySize(v4 bool) *big.Int {
	t := new(big.Int)
	for _, r := range p.Ranges {
		if r.Is4() != v4 {
			continue
		}
		t.Add(t, r.Size())
		if p.AvoidBuggyIPs {
			t.Sub(t, new(big.Int).SetUint64(r.Buggy()))
		}
	}
	return t
}

// Summary describes the pool on one line, e.g.
// `pool "default": layer2, IPv4, 21 addresses (192.168.1.200-192.168.1.220)`.
func (p *Pool) Summary() string {
	size := p.Size()
	word := "addresses"
	if size.Cmp(big.NewInt(1)) == 0 {
		word = "address"
	}
	var extra []string
	if !p.AutoAssign {
		extra = append(extra, "auto-assign off")
	}
	if p.AvoidBuggyIPs {
		extra = append(extra, "avoids .0/.255")
	}
	if len(p.Namespaces) > 0 {
		extra = append(extra, "namespaces "+strings.Join(p.Namespaces, ","))
	}
	if p.Priority > 0 {
		extra = append(extra, fmt.Sprintf("priority %d", p.Priority))
	}
	s := fmt.Sprintf("pool %q: %s, %s, %s %s (%s)", p.Name, p.Protocol, p.Family(), size, word, iprange.Join(p.Ranges))
	if len(extra) > 0 {
		s += ", " + strings.Join(extra, ", ")
	}
	return s
}

// FromManifest recognises a ConfigMap manifest (kind: ConfigMap with
// data.config) and returns the embedded config and the number of lines that
// precede it, so that error lines can point into the manifest. ok is false
// when data is not such a manifest.
func FromManifest(data []byte) (cfg []byte, lineOffset int, ok bool) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, 0, false
	}
	root := doc.Content[0]
	get := func(n *yaml.Node, key string) *yaml.Node {
		for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
		return nil
	}
	if k := get(root, "kind"); k == nil || k.Value != "ConfigMap" {
		return nil, 0, false
	}
	v := get(get(root, "data"), "config")
	if v == nil || v.Kind != yaml.ScalarNode {
		return nil, 0, false
	}
	offset := v.Line - 1
	if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		offset = v.Line // block scalars start on the next line
	}
	return []byte(v.Value), offset, true
}

// ShiftLines adds offset to every error's line (for configs read out of a
// manifest).
func ShiftLines(err error, offset int) error {
	es, ok := err.(Errors)
	if !ok || offset == 0 {
		return err
	}
	out := make(Errors, len(es))
	for i, e := range es {
		if e.Line > 0 {
			e.Line += offset
		}
		out[i] = e
	}
	return out
}
