package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"

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

// QuickPeer is the one BGP router of enable's quick start.
type QuickPeer struct {
	Address        netip.Addr
	PeerASN, MyASN uint32
}

// SetBGPPool is SetPool for a BGP pool: the pool called name holds exactly
// addrs and is announced by BGP (protocol: bgp), and peers has peer, the
// AS numbers of an entry at that address set to peer's (its other keys
// kept), or a new entry. Other pools and peers are kept.
func SetBGPPool(text []byte, name string, addrs []iprange.Range, peer QuickPeer) ([]byte, error) {
	text, err := SetPool(text, name, addrs)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, err
	}
	root := doc.Content[0]
	for _, p := range mapValue(root, "address-pools").Content {
		if n := mapValue(p, "name"); n != nil && n.Value == name {
			setKey(p, "protocol", "bgp")
		}
	}
	peers := mapValue(root, "peers")
	if peers == nil {
		peers = &yaml.Node{Kind: yaml.SequenceNode}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "peers"}, peers)
	}
	if peers.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("peers in the current config is not a list (fix or delete the ConfigMap first)")
	}
	var entry *yaml.Node
	for _, p := range peers.Content {
		if a := mapValue(p, "peer-address"); a != nil {
			if addr, err := netip.ParseAddr(a.Value); err == nil && addr == peer.Address {
				entry = p
			}
		}
	}
	if entry == nil {
		entry = &yaml.Node{Kind: yaml.MappingNode}
		setKey(entry, "peer-address", peer.Address.String())
		peers.Content = append(peers.Content, entry)
	}
	setKey(entry, "peer-asn", strconv.FormatUint(uint64(peer.PeerASN), 10))
	setKey(entry, "my-asn", strconv.FormatUint(uint64(peer.MyASN), 10))
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if _, err := Parse(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("with pool %q set to %s, announced by BGP to %s (AS%d), the config is invalid:\n%w", name, iprange.Join(addrs), peer.Address, peer.PeerASN, err)
	}
	return buf.Bytes(), nil
}

// setKey sets the scalar value of key in mapping m, adding the key last
// when m lacks it.
func setKey(m *yaml.Node, key, value string) {
	if v := mapValue(m, key); v != nil {
		*v = yaml.Node{Kind: yaml.ScalarNode, Value: value}
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
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

// The names MicroK8s's core metallb addon gives the pool its enable writes
// and the advertisement that announces every pool.
const (
	DefaultResourcePool = "default-addresspool"
	DefaultResourceL2   = "default-advertise-all-pools"
)

// SetResourcePool is SetPool for metallb.io resources: in docs (as
// Combine takes them), the IPAddressPool called name gets exactly addrs
// as its addresses (its other fields are kept), or a new one is added with
// L2Advertisement DefaultResourceL2 announcing every pool, unless an
// advertisement of that name exists. It returns every document and the
// ones changed or added, for the caller to apply.
func SetResourcePool(docs [][]byte, name string, addrs []iprange.Range) (all, changed [][]byte, err error) {
	list := make([]any, len(addrs))
	for i, r := range addrs {
		list[i] = r.String()
	}
	found, haveL2 := false, false
	for _, d := range docs {
		var obj struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		if err := yaml.Unmarshal(d, &obj); err != nil {
			return nil, nil, fmt.Errorf("a metallb.io resource: %w", err)
		}
		switch {
		case obj.Kind == KindIPAddressPool && obj.Metadata.Name == name:
			var full map[string]any
			if err := yaml.Unmarshal(d, &full); err != nil {
				return nil, nil, fmt.Errorf("IPAddressPool %s: %w", name, err)
			}
			spec, _ := full["spec"].(map[string]any)
			if spec == nil {
				spec = map[string]any{}
			}
			spec["addresses"] = list
			full["spec"] = spec
			if d, err = yaml.Marshal(full); err != nil {
				return nil, nil, fmt.Errorf("IPAddressPool %s: %w", name, err)
			}
			found = true
			changed = append(changed, d)
		case obj.Kind == KindL2Advertisement && obj.Metadata.Name == DefaultResourceL2:
			haveL2 = true
		}
		all = append(all, d)
	}
	if !found {
		pool, err := ResourceDocument(Group+"/"+versions[KindIPAddressPool][0], KindIPAddressPool, name, nil, map[string]any{"addresses": list})
		if err != nil {
			return nil, nil, err
		}
		all, changed = append(all, pool), append(changed, pool)
		if !haveL2 {
			l2, err := ResourceDocument(Group+"/"+versions[KindL2Advertisement][0], KindL2Advertisement, DefaultResourceL2, nil, nil)
			if err != nil {
				return nil, nil, err
			}
			all, changed = append(all, l2), append(changed, l2)
		}
	}
	return all, changed, nil
}
