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
	return editConfig(text, func(root *yaml.Node) (string, error) {
		_, err := setPool(root, name, addrs)
		return fmt.Sprintf("with pool %q set to %s the config is invalid", name, iprange.Join(addrs)), err
	})
}

// setPool gives the pool called name exactly addrs in the config's root
// mapping, adding a layer2 pool when there is none, and returns the pool.
func setPool(root *yaml.Node, name string, addrs []iprange.Range) (*yaml.Node, error) {
	seq := yaml.Node{Kind: yaml.SequenceNode}
	for _, r := range addrs {
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: r.String()})
	}
	pools, err := listValue(root, "address-pools")
	if err != nil {
		return nil, err
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
	return pool, nil
}

// editConfig decodes text (empty: a new config), lets edit change its root
// mapping, and returns the encoded result once it parses; edit returns
// what to say before a parse error.
func editConfig(text []byte, edit func(root *yaml.Node) (string, error)) ([]byte, error) {
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
	invalid, err := edit(root)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if _, err := Parse(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("%s:\n%w", invalid, err)
	}
	return buf.Bytes(), nil
}

// listValue returns the list under key in mapping root, adding an empty
// one when root lacks it.
func listValue(root *yaml.Node, key string) (*yaml.Node, error) {
	l := mapValue(root, key)
	if l == nil {
		l = &yaml.Node{Kind: yaml.SequenceNode}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, l)
	}
	if l.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s in the current config is not a list (fix or delete the ConfigMap first)", key)
	}
	return l, nil
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
	return editConfig(text, func(root *yaml.Node) (string, error) {
		invalid := fmt.Sprintf("with pool %q set to %s, announced by BGP to %s (AS%d), the config is invalid", name, iprange.Join(addrs), peer.Address, peer.PeerASN)
		pool, err := setPool(root, name, addrs)
		if err != nil {
			return "", err
		}
		setKey(pool, "protocol", "bgp")
		peers, err := listValue(root, "peers")
		if err != nil {
			return "", err
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
		return invalid, nil
	})
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
