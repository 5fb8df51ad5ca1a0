package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The metallb.io resources (MetalLB v0.13+): the kinds this package reads,
// and the API versions each is served in.
const (
	KindIPAddressPool      = "IPAddressPool"
	KindL2Advertisement    = "L2Advertisement"
	KindBGPAdvertisement   = "BGPAdvertisement"
	KindBGPPeer            = "BGPPeer"
	KindCommunity          = "Community"
	KindBFDProfile         = "BFDProfile"
	KindServiceL2Status    = "ServiceL2Status"
	KindServiceBGPStatus   = "ServiceBGPStatus"
	KindConfigurationState = "ConfigurationState"

	Group = "metallb.io"
)

// versions lists the API versions each configuration kind is served in;
// the status kinds are written by the controller and speakers, not read.
var versions = map[string][]string{
	KindIPAddressPool:    {"v1beta1"},
	KindL2Advertisement:  {"v1beta1"},
	KindBGPAdvertisement: {"v1beta1"},
	KindBGPPeer:          {"v1beta2", "v1beta1"},
	KindCommunity:        {"v1beta1"},
	KindBFDProfile:       {"v1beta1"},
}

// statusKinds are metallb.io kinds that hold state, not configuration.
var statusKinds = []string{KindServiceL2Status, KindServiceBGPStatus, KindConfigurationState}

// ConfigKinds are the metallb.io kinds that make up a configuration, in
// the order the controller lists them.
func ConfigKinds() []string {
	return []string{KindIPAddressPool, KindL2Advertisement, KindBGPAdvertisement, KindBGPPeer, KindCommunity, KindBFDProfile}
}

// resource is one metallb.io object being read.
type resource struct {
	kind, name string
	labels     map[string]string
	root       *yaml.Node
	spec       *yaml.Node
	path       string // "IPAddressPool/web: spec", for messages
}

// advertisementSource is what a resource advertisement selects, resolved
// once every pool is known.
type advertisementSource struct {
	path      string
	node      *yaml.Node
	names     []string
	selectors []Selector
}

// resources reads the metallb.io documents into cfg (pools into pools),
// and returns the advertisements' pool choices to resolve.
func (d *decoder) resources(cfg *Config, pools *[]*rawPool, docs []Document) (l2, bgp []advertisementSource) {
	defer func() { d.object = "" }()
	for _, doc := range docs {
		d.object = ""
		r := d.readResource(doc)
		if r == nil {
			continue
		}
		switch r.kind {
		case KindIPAddressPool:
			*pools = append(*pools, d.ipAddressPool(r))
		case KindL2Advertisement:
			a, src := d.l2Advertisement(r)
			cfg.L2Advertisements = append(cfg.L2Advertisements, a)
			l2 = append(l2, src)
		case KindBGPAdvertisement:
			a, src := d.bgpAdvertisement(cfg, r)
			cfg.BGPAdvertisements = append(cfg.BGPAdvertisements, a)
			bgp = append(bgp, src)
		case KindBGPPeer:
			cfg.Peers = append(cfg.Peers, d.bgpPeer(r))
		case KindCommunity:
			d.community(cfg, r)
		case KindBFDProfile:
			p := d.bfdProfileResource(r)
			if _, dup := cfg.BFDProfiles[p.Name]; dup {
				d.errorf(r.root, "BFDProfile/%s: a BFD profile of this name is also in the ConfigMap's bfd-profiles: keep one", p.Name)
				continue
			}
			cfg.BFDProfiles[p.Name] = p
		}
	}
	return l2, bgp
}

// readResource checks what every metallb.io object has in common and
// returns it, or nil when it cannot be read further.
func (d *decoder) readResource(doc Document) *resource {
	if doc.node == nil {
		return nil
	}
	r := &resource{kind: doc.Kind, name: doc.Name, root: doc.node}
	if slices.Contains(statusKinds, doc.Kind) {
		return nil // state the controller and speakers write: not configuration
	}
	vs, known := versions[doc.Kind]
	if !known {
		d.errorf(doc.node, "%s: kind %q is not a metallb.io kind; known kinds: %s", doc.APIVersion, doc.Kind, strings.Join(ConfigKinds(), ", "))
		return nil
	}
	if v := strings.TrimPrefix(doc.APIVersion, Group+"/"); !slices.Contains(vs, v) {
		d.errorf(doc.node, "%s %s: version %s is not served; use apiVersion: %s/%s", doc.APIVersion, doc.Kind, v, Group, vs[0])
		return nil
	}
	if doc.Name == "" {
		d.errorf(doc.node, "%s: metadata.name is required", doc.Kind)
		return nil
	}
	r.path = doc.Kind + "/" + doc.Name + ": spec"
	d.object = doc.Kind + "/" + doc.Name
	d.mapping(doc.node, doc.Kind+"/"+doc.Name, map[string]field{
		"apiVersion": func(*yaml.Node) {},
		"kind":       func(*yaml.Node) {},
		"metadata": func(v *yaml.Node) {
			if l := get(v, "labels"); l != nil && l.Kind == yaml.MappingNode {
				r.labels = map[string]string{}
				for i := 0; i+1 < len(l.Content); i += 2 {
					r.labels[l.Content[i].Value] = l.Content[i+1].Value
				}
			}
		},
		"spec":   func(v *yaml.Node) { r.spec = v },
		"status": func(*yaml.Node) {},
	})
	if r.spec == nil {
		if doc.Kind == KindIPAddressPool || doc.Kind == KindBGPPeer {
			d.errorf(doc.node, "%s: spec is required", d.object)
			return nil
		}
		r.spec = &yaml.Node{Kind: yaml.MappingNode, Line: doc.node.Line}
	}
	return r
}

// unsupported refuses a field MetalLB v0.15 defines that this version does
// not carry out yet, saying what to do instead.
func (d *decoder) unsupported(path string, instead string) field {
	return func(v *yaml.Node) {
		if isEmpty(v) {
			return
		}
		d.errorf(v, "%s: not supported by this version yet: %s", path, instead)
	}
}

// isEmpty: the value is null, false, "", 0 or an empty list or mapping
// (what a controller writing defaults leaves behind).
func isEmpty(v *yaml.Node) bool {
	switch v.Kind {
	case yaml.SequenceNode, yaml.MappingNode:
		return len(v.Content) == 0
	case yaml.ScalarNode:
		return v.Tag == "!!null" || v.Value == "" || v.Value == "false" || v.Value == "0"
	}
	return false
}

func (d *decoder) ipAddressPool(r *resource) *rawPool {
	path := r.path
	p := &rawPool{Pool: &Pool{Name: r.name, AutoAssign: true, Line: r.root.Line, Resource: true, Labels: r.labels}, path: d.object + ": spec.addresses"}
	var addrs *yaml.Node
	d.mapping(r.spec, path, map[string]field{
		"addresses": func(v *yaml.Node) {
			addrs = v
			d.poolAddresses(v, path+".addresses", p)
		},
		"autoAssign":    func(v *yaml.Node) { p.AutoAssign = d.boolean(v, path+".autoAssign") },
		"avoidBuggyIPs": func(v *yaml.Node) { p.AvoidBuggyIPs = d.boolean(v, path+".avoidBuggyIPs") },
		"serviceAllocation": func(v *yaml.Node) {
			sa := path + ".serviceAllocation"
			d.mapping(v, sa, map[string]field{
				"priority":           func(v *yaml.Node) { p.Priority = int(d.integer(v, sa+".priority", 0, math.MaxInt32)) },
				"namespaces":         func(v *yaml.Node) { p.Namespaces = d.strings(v, sa+".namespaces") },
				"serviceSelectors":   func(v *yaml.Node) { p.ServiceSelectors = d.labelSelectors(v, sa+".serviceSelectors") },
				"namespaceSelectors": func(v *yaml.Node) { p.NamespaceSelectors = d.labelSelectors(v, sa+".namespaceSelectors") },
			})
		},
	})
	switch {
	case addrs == nil:
		d.errorf(r.spec, "%s.addresses is required (e.g. addresses: [192.168.1.200-192.168.1.220])", path)
	case emptyList(addrs):
		d.errorf(addrs, "%s.addresses is empty", path)
	}
	for _, ns := range p.Namespaces {
		if !dnsLabel.MatchString(ns) {
			d.errorf(r.spec, "%s.serviceAllocation.namespaces: %q is not a valid namespace name", path, ns)
		}
	}
	return p
}

// poolChoice reads the fields by which an advertisement selects pools.
func (d *decoder) poolChoice(r *resource, src *advertisementSource) map[string]field {
	src.path, src.node = r.path, r.root
	return map[string]field{
		"ipAddressPools":         func(v *yaml.Node) { src.names = d.strings(v, r.path+".ipAddressPools") },
		"ipAddressPoolSelectors": func(v *yaml.Node) { src.selectors = d.labelSelectors(v, r.path+".ipAddressPoolSelectors") },
	}
}

func (d *decoder) l2Advertisement(r *resource) (*L2Advertisement, advertisementSource) {
	a := &L2Advertisement{Name: r.name}
	var src advertisementSource
	fields := d.poolChoice(r, &src)
	fields["nodeSelectors"] = func(v *yaml.Node) { a.NodeSelectors = d.labelSelectors(v, r.path+".nodeSelectors") }
	fields["interfaces"] = func(v *yaml.Node) { a.Interfaces = d.strings(v, r.path+".interfaces") }
	fields["serviceSelectors"] = d.unsupported(r.path+".serviceSelectors", "give those Services a pool of their own and an advertisement for it")
	fields["preferredNodeSelectors"] = d.unsupported(r.path+".preferredNodeSelectors", "the election spreads addresses over the nodes nodeSelectors allow")
	d.mapping(r.spec, r.path, fields)
	return a, src
}

func (d *decoder) bgpAdvertisement(cfg *Config, r *resource) (*BGPAdvertisement, advertisementSource) {
	a := &BGPAdvertisement{Name: r.name, Advertisement: Advertisement{AggregationLength: 32, AggregationLengthV6: 128}}
	var src advertisementSource
	fields := d.poolChoice(r, &src)
	fields["aggregationLength"] = func(v *yaml.Node) {
		a.AggregationLength = int(d.intOr(v, r.path+".aggregationLength", 0, 32, 32))
	}
	fields["aggregationLengthV6"] = func(v *yaml.Node) {
		a.AggregationLengthV6 = int(d.intOr(v, r.path+".aggregationLengthV6", 0, 128, 128))
	}
	fields["localPref"] = func(v *yaml.Node) {
		a.LocalPref, a.HasLocalPref = d.uint32(v, r.path+".localPref", 0, math.MaxUint32), true
	}
	fields["communities"] = func(v *yaml.Node) {
		d.list(v, r.path+".communities", func(i int, item *yaml.Node) {
			if s := d.str(item, fmt.Sprintf("%s.communities[%d]", r.path, i)); s != "" {
				d.pending = append(d.pending, pendingCommunity{adv: &a.Advertisement, text: s, node: item, path: fmt.Sprintf("%s.communities[%d]", r.path, i), object: d.object})
			}
		})
	}
	fields["nodeSelectors"] = func(v *yaml.Node) { a.NodeSelectors = d.labelSelectors(v, r.path+".nodeSelectors") }
	fields["peers"] = func(v *yaml.Node) {
		a.Peers = d.strings(v, r.path+".peers")
		slices.Sort(a.Peers)
		a.Peers = slices.Compact(a.Peers)
		if len(a.Peers) > 0 {
			d.peerChoices = append(d.peerChoices, peerChoice{path: r.path + ".peers", names: a.Peers})
		}
	}
	fields["serviceSelectors"] = d.unsupported(r.path+".serviceSelectors", "give those Services a pool of their own and an advertisement for it")
	d.mapping(r.spec, r.path, fields)
	return a, src
}

// pendingCommunity is a community written in a BGPAdvertisement, resolved
// once every Community alias is known.
type pendingCommunity struct {
	adv                *Advertisement
	text, path, object string
	node               *yaml.Node
}

func (d *decoder) community(cfg *Config, r *resource) {
	d.mapping(r.spec, r.path, map[string]field{
		"communities": func(v *yaml.Node) {
			d.list(v, r.path+".communities", func(i int, item *yaml.Node) {
				path := fmt.Sprintf("%s.communities[%d]", r.path, i)
				var name, value string
				d.mapping(item, path, map[string]field{
					"name":  func(v *yaml.Node) { name = d.str(v, path+".name") },
					"value": func(v *yaml.Node) { value = d.str(v, path+".value") },
				})
				if name == "" || value == "" {
					d.errorf(item, "%s: name and value are required", path)
					return
				}
				c, err := parseCommunity(value)
				if err != nil {
					d.errorf(item, "%s.value: %q: %v", path, value, err)
					return
				}
				if _, dup := cfg.Communities[name]; dup {
					d.errorf(item, "%s.name: the alias %q is defined twice (in the ConfigMap's bgp-communities or another Community): keep one", path, name)
					return
				}
				cfg.Communities[name] = c
			})
		},
	})
}

func (d *decoder) bgpPeer(r *resource) *Peer {
	path := r.path
	p := &Peer{Name: r.name, Port: DefaultPeerPort, HoldTime: DefaultHoldTime, Line: r.root.Line}
	have := map[string]*yaml.Node{}
	addr := func(key string) field {
		return func(v *yaml.Node) {
			have[key] = v
			s := d.str(v, path+"."+key)
			if s == "" {
				return
			}
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				d.errorf(v, "%s.%s: %q is not an IP address", path, key, s)
				return
			}
			switch key {
			case "peerAddress":
				p.Address = a.Unmap()
			case "sourceAddress":
				p.SourceAddress = a.Unmap()
			case "routerID":
				p.RouterID = a.Unmap()
			}
		}
	}
	dur := func(key string, into *time.Duration) field {
		return func(v *yaml.Node) {
			have[key] = v
			s := d.str(v, path+"."+key)
			if s == "" {
				return
			}
			t, err := time.ParseDuration(s)
			if err != nil {
				d.errorf(v, "%s.%s: %q: want a duration such as 90s or 1m30s", path, key, s)
				return
			}
			*into = t
		}
	}
	var connect time.Duration
	d.mapping(r.spec, path, map[string]field{
		"myASN":         func(v *yaml.Node) { have["myASN"] = v; p.MyASN = d.uint32(v, path+".myASN", 1, math.MaxUint32) },
		"peerASN":       func(v *yaml.Node) { have["peerASN"] = v; p.ASN = d.uint32(v, path+".peerASN", 1, math.MaxUint32) },
		"peerAddress":   addr("peerAddress"),
		"sourceAddress": addr("sourceAddress"),
		"routerID":      addr("routerID"),
		"peerPort":      func(v *yaml.Node) { p.Port = uint16(d.integer(v, path+".peerPort", 1, maxResourcePeerPort)) },
		"holdTime":      dur("holdTime", &p.HoldTime),
		"keepaliveTime": dur("keepaliveTime", &p.KeepaliveTime),
		"connectTime":   dur("connectTime", &connect),
		"nodeSelectors": func(v *yaml.Node) { p.NodeSelectors = d.labelSelectors(v, path+".nodeSelectors") },
		"password":      func(v *yaml.Node) { have["password"] = v; p.Password = d.str(v, path+".password") },
		"passwordSecret": func(v *yaml.Node) {
			have["passwordSecret"] = v
			ps := path + ".passwordSecret"
			var ns string
			d.mapping(v, ps, map[string]field{
				"name":      func(v *yaml.Node) { p.PasswordSecret = d.str(v, ps+".name") },
				"namespace": func(v *yaml.Node) { ns = d.str(v, ps+".namespace") },
			})
			p.PasswordSecretNamespace = ns
			if p.PasswordSecret == "" {
				d.errorf(v, "%s.name is required: the Secret (of type kubernetes.io/basic-auth) whose key password holds the TCP MD5 key", ps)
			}
		},
		"bfdProfile":            func(v *yaml.Node) { have["bfdProfile"] = v; p.BFDProfile = d.str(v, path+".bfdProfile") },
		"enableGracefulRestart": func(v *yaml.Node) { p.GracefulRestart = d.boolean(v, path+".enableGracefulRestart") },
		"ebgpMultiHop":          func(v *yaml.Node) { p.EBGPMultiHop = d.boolean(v, path+".ebgpMultiHop") },
		"vrf": func(v *yaml.Node) {
			p.VRF = d.str(v, path+".vrf")
			if err := checkDeviceName(p.VRF); err != nil {
				d.errorf(v, "%s.vrf: %q: %v", path, p.VRF, err)
			}
		},
		"dynamicASN": func(v *yaml.Node) {
			have["dynamicASN"] = v
			switch p.DynamicASN = d.str(v, path+".dynamicASN"); p.DynamicASN {
			case "internal", "external":
			default:
				d.errorf(v, "%s.dynamicASN: %q: want internal (the router is in myASN) or external (any other AS, taken from its OPEN)", path, p.DynamicASN)
			}
		},
		"localASN":  d.unsupported(path+".localASN", "give this side's AS number in spec.myASN"),
		"interface": d.unsupported(path+".interface", "give the router's address in spec.peerAddress"),
		// Each session carries its own family's prefixes: what disableMP
		// true asks, and MetalLB v0.15's default either way.
		"disableMP": func(v *yaml.Node) { _ = d.boolean(v, path+".disableMP") },
		"dualStackAddressFamily": d.unsupported(path+".dualStackAddressFamily",
			"add one BGPPeer per address family of the router"),
	})
	for _, key := range []string{"peerAddress", "peerASN", "myASN"} {
		if have[key] == nil && (key != "peerASN" || have["dynamicASN"] == nil) {
			d.errorf(r.spec, "%s.%s is required", path, key)
		}
	}
	switch {
	case have["peerASN"] != nil && have["dynamicASN"] != nil:
		d.errorf(have["dynamicASN"], "%s: peerASN and dynamicASN exclude each other: keep one", path)
	case p.DynamicASN == "internal":
		p.ASN = p.MyASN
	}
	if v := have["passwordSecret"]; v != nil && p.Password != "" {
		d.errorf(v, "%s: password and passwordSecret exclude each other: keep one", path)
	}
	d.checkPeer(p, have, path, resourcePeerKeys)
	if v := have["connectTime"]; v != nil && (connect < time.Second || connect > math.MaxUint16*time.Second || connect%time.Second != 0) {
		d.errorf(v, "%s.connectTime: %s: want a whole number of seconds from 1s to 65535s", path, connect)
	}
	p.ConnectTime = connect
	return p
}

func (d *decoder) bfdProfileResource(r *resource) *BFDProfile {
	path := r.path
	p := &BFDProfile{Name: r.name, ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3, EchoInterval: 50, MinimumTTL: 254, Line: r.root.Line}
	var echo *yaml.Node
	d.mapping(r.spec, path, map[string]field{
		"receiveInterval":  func(v *yaml.Node) { p.ReceiveInterval = d.uint32(v, path+".receiveInterval", 10, 60000) },
		"transmitInterval": func(v *yaml.Node) { p.TransmitInterval = d.uint32(v, path+".transmitInterval", 10, 60000) },
		"detectMultiplier": func(v *yaml.Node) { p.DetectMultiplier = d.uint32(v, path+".detectMultiplier", 2, 255) },
		"echoInterval":     func(v *yaml.Node) { p.EchoInterval = d.uint32(v, path+".echoInterval", 10, 60000) },
		"echoMode":         func(v *yaml.Node) { echo = v; p.EchoMode = d.boolean(v, path+".echoMode") },
		"passiveMode":      func(v *yaml.Node) { p.PassiveMode = d.boolean(v, path+".passiveMode") },
		"minimumTtl":       func(v *yaml.Node) { p.MinimumTTL = d.uint32(v, path+".minimumTtl", 1, 254) },
	})
	d.checkBFDProfile(p, echo, path, "echoMode")
	return p
}

// resolveAdvertisements gives each resource advertisement its pools: those
// it names and those its selectors match (ORed); none of either: every
// IPAddressPool. A name that no pool has is a warning (the pool may come
// later), not an error.
func (d *decoder) resolveAdvertisements(cfg *Config, srcs []advertisementSource, set func(i int, pools []string)) {
	for i, src := range srcs {
		var pools []string
		for _, n := range src.names {
			if cfg.Pool(n) == nil {
				cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s.ipAddressPools: no pool is named %q: nothing is announced for it", src.path, n))
				continue
			}
			pools = append(pools, n)
		}
		for _, p := range cfg.Pools {
			if slices.Contains(pools, p.Name) {
				continue
			}
			all := len(src.names) == 0 && len(src.selectors) == 0
			if p.Resource && (all || len(src.selectors) > 0 && MatchesAny(src.selectors, p.Labels)) {
				pools = append(pools, p.Name)
			}
		}
		set(i, pools)
	}
}

// peerChoice is the peers a BGPAdvertisement names, checked once every
// BGPPeer is known.
type peerChoice struct {
	path  string
	names []string
}

// checkPeerChoices warns about the names in BGPAdvertisements' peers that
// no BGPPeer has: those routes go to the peers that do exist in the list,
// and to none when no name matches (the peer may come later).
func (d *decoder) checkPeerChoices(cfg *Config) {
	for _, c := range d.peerChoices {
		for _, n := range c.names {
			if !slices.ContainsFunc(cfg.Peers, func(p *Peer) bool { return p.Name == n }) {
				cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s: no BGPPeer is named %q: nothing is advertised to it", c.path, n))
			}
		}
	}
}

// protocols sets a resource pool's Protocol from the advertisements that
// announce it, and warns about the pools none announces.
func (c *Config) protocols() {
	for _, p := range c.Pools {
		if !p.Resource {
			continue
		}
		l2, bgp := len(c.L2For(p.Name)) > 0, len(c.BGPFor(p.Name)) > 0
		switch {
		case l2 && bgp:
			p.Protocol = Both
		case l2:
			p.Protocol = Layer2
		case bgp:
			p.Protocol = BGP
		default:
			p.Protocol = Unannounced
			c.Warnings = append(c.Warnings, fmt.Sprintf("IPAddressPool/%s is not announced: no L2Advertisement or BGPAdvertisement selects it, so its addresses are assigned but nothing answers for them (add one, e.g. an L2Advertisement with ipAddressPools: [%s])", p.Name, p.Name))
		}
	}
}

// resolvePending resolves the communities written in BGPAdvertisements:
// an alias (of a Community or the ConfigMap's bgp-communities) or a value.
func (d *decoder) resolvePending(cfg *Config) {
	for _, pc := range d.pending {
		d.object = pc.object
		if c, ok := cfg.Communities[pc.text]; ok {
			pc.adv.Communities = append(pc.adv.Communities, c)
			continue
		}
		c, err := parseCommunity(pc.text)
		if err != nil {
			d.errorf(pc.node, "%s: %q: %v", pc.path, pc.text, err)
			continue
		}
		pc.adv.Communities = append(pc.adv.Communities, c)
	}
	d.object = ""
}

// get returns the value of key in mapping n, or nil.
func get(n *yaml.Node, key string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Combine joins the ConfigMap's v0.12 config and the metallb.io resources
// (each one YAML document) into one text, the form Parse reads and the
// controller keeps as its accepted copy: the config first, so that the
// lines of its errors stay those of the ConfigMap. The ConfigMap's config
// must be one document: resources belong in objects of their own.
func Combine(text string, resources [][]byte) (string, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	for n := 0; ; {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err != nil { // io.EOF, or not YAML: Parse says why
			break
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue
		}
		if n++; n > 1 || get(doc.Content[0], "apiVersion") != nil {
			return "", Errors{{Line: doc.Content[0].Line, Msg: "the config holds more than a v0.12 config: apply metallb.io resources as objects of their own (kubectl apply -f), and keep one YAML document in the ConfigMap"}}
		}
	}
	if len(resources) == 0 {
		return text, nil
	}
	var b strings.Builder
	b.WriteString(text)
	if text != "" && !strings.HasSuffix(text, "\n") {
		b.WriteByte('\n')
	}
	for _, r := range resources {
		b.WriteString("---\n")
		b.Write(r)
		if len(r) > 0 && r[len(r)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}

// ResourceDocument renders a metallb.io object as Combine takes it: what
// the configuration reads of it (apiVersion, kind, name, labels and spec),
// so that its status or bookkeeping changing changes nothing.
func ResourceDocument(apiVersion, kind, name string, labels map[string]string, spec map[string]any) ([]byte, error) {
	meta := map[string]any{"name": name}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	obj := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	if spec != nil {
		obj["spec"] = spec
	}
	return yaml.Marshal(obj)
}

// WithoutResourceLines drops the lines of the errors in resources: in a
// combined text they are not lines of anything the operator wrote (their
// messages name the object and field).
func WithoutResourceLines(err error) error {
	es, ok := err.(Errors)
	if !ok {
		return err
	}
	out := make(Errors, len(es))
	for i, e := range es {
		if e.Object != "" {
			e.Line = 0
		}
		out[i] = e
	}
	return out
}

// SplitCombined splits a text Combine made (the accepted copy, or what
// disable saved) into the ConfigMap's v0.12 config and the resources, one
// YAML document each.
func SplitCombined(text string) (v012 string, resources []string, err error) {
	docs, err := SplitDocuments([]byte(text))
	if err != nil {
		return "", nil, err
	}
	for _, d := range docs {
		switch {
		case d.MetalLBResource() && d.node != nil:
			b, err := yaml.Marshal(d.node)
			if err != nil {
				return "", nil, fmt.Errorf("%s: %w", d.What(), err)
			}
			resources = append(resources, string(b))
		case d.Config != nil && v012 == "":
			v012 = string(d.Config)
		}
	}
	return v012, resources, nil
}
