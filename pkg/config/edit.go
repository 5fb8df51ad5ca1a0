package config

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// SetPool returns config text in which the pool called name holds exactly
// addrs: the pool's addresses are replaced if it exists (its other keys,
// the other pools, peers and comments are kept), or a layer2 pool is added.
// An empty text starts a new config. The result is parsed, so a pool that now
// overlaps another one is an error and nothing is returned.
func SetPool(text []byte, name string, addrs []iprange.Range) ([]byte, error) {
	var seq yaml.Node
	seq.Kind = yaml.SequenceNode
	for _, r := range addrs {
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: r.String()})
	}
	var doc yaml.Node
	if len(bytes.TrimSpace(text)) > 0 {
		if err := yaml.Unmarshal(text, &doc); err != nil {
			return nil, fmt.Errorf("the current config is not YAML (fix or delete the ConfigMap first): %w", err)
		}
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the current config is not a mapping (fix or delete the ConfigMap first)")
	}
	pools := mapValue(root, "address-pools")
	if pools == nil {
		pools = &yaml.Node{Kind: yaml.SequenceNode}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "address-pools"}, pools)
	}
	if pools.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("address-pools in the current config is not a list (fix or delete the ConfigMap first)")
	}
	var pool *yaml.Node
	for _, p := range pools.Content {
		if n := mapValue(p, "name"); n != nil && n.Value == name {
			pool = p
		}
	}
	if pool == nil {
		pool = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Value: "name"}, {Kind: yaml.ScalarNode, Value: name},
			{Kind: yaml.ScalarNode, Value: "protocol"}, {Kind: yaml.ScalarNode, Value: "layer2"},
			{Kind: yaml.ScalarNode, Value: "addresses"}, &seq,
		}}
		pools.Content = append(pools.Content, pool)
	} else if a := mapValue(pool, "addresses"); a != nil {
		*a = seq
	} else {
		pool.Content = append(pool.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "addresses"}, &seq)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if _, err := Parse(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("with pool %q set to %s the config is invalid:\n%w", name, iprange.Join(addrs), err)
	}
	return buf.Bytes(), nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
