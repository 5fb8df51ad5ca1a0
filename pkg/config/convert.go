package config

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// objectName is what Kubernetes accepts as an object's name (a DNS
// subdomain, RFC 1123).
var objectName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// maxResourcePeerPort is the highest peerPort MetalLB's BGPPeer allows.
const maxResourcePeerPort = 16384

// Converted is a configuration written as metallb.io resources.
type Converted struct {
	// Objects are YAML documents, one object each, in apply order
	// (profiles and communities before what names them).
	Objects [][]byte
	// Dropped says what the resources cannot express, one line each.
	Dropped []string
}

// Convert writes the v0.12 configuration cfg (the ConfigMap's) as the
// metallb.io resources that mean the same, in namespace, keeping names: pool
// web becomes IPAddressPool web, announced by L2Advertisement web (layer2)
// or by BGPAdvertisements web-0, web-1, ... (one per bgp-advertisements
// entry); peers become BGPPeers named after their address. Parsed again,
// the resources give the same pools, advertisements and peers. A name that
// Kubernetes refuses is an error saying so.
func Convert(cfg *Config, namespace string) (*Converted, error) {
	out := &Converted{}
	var errs Errors
	badNames := map[string]bool{} // each reported once, not once per object
	add := func(kind, name string, spec map[string]any) {
		if !objectName.MatchString(name) {
			if badNames[name] {
				return
			}
			badNames[name] = true
			errs = append(errs, Error{Msg: fmt.Sprintf("%s %q: not a valid object name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit): rename it in the ConfigMap first", kind, name)})
			return
		}
		obj := map[string]any{
			"apiVersion": Group + "/" + versions[kind][0],
			"kind":       kind,
			"metadata":   map[string]any{"name": name, "namespace": namespace},
		}
		if len(spec) > 0 {
			obj["spec"] = spec
		}
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(obj); err != nil {
			errs = append(errs, Error{Msg: fmt.Sprintf("%s %q: %v", kind, name, err)})
			return
		}
		out.Objects = append(out.Objects, b.Bytes())
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.BFDProfiles)) {
		p := cfg.BFDProfiles[name]
		add(KindBFDProfile, name, map[string]any{
			"receiveInterval": p.ReceiveInterval, "transmitInterval": p.TransmitInterval, "detectMultiplier": p.DetectMultiplier,
			"echoInterval": p.EchoInterval, "echoMode": p.EchoMode, "passiveMode": p.PassiveMode, "minimumTtl": p.MinimumTTL,
		})
	}
	if len(cfg.Communities) > 0 {
		var list []any
		for _, name := range slices.Sorted(maps.Keys(cfg.Communities)) {
			list = append(list, map[string]any{"name": name, "value": cfg.Communities[name].String()})
		}
		add(KindCommunity, "communities", map[string]any{"communities": list})
	}
	for _, p := range cfg.Pools {
		add(KindIPAddressPool, p.Name, poolSpec(p))
	}
	for _, a := range cfg.L2Advertisements {
		spec := map[string]any{"ipAddressPools": a.Pools}
		setSelectors(spec, "nodeSelectors", a.NodeSelectors)
		if len(a.Interfaces) > 0 {
			spec["interfaces"] = a.Interfaces
		}
		add(KindL2Advertisement, a.Name, spec)
	}
	for _, a := range cfg.BGPAdvertisements {
		spec := map[string]any{"ipAddressPools": a.Pools}
		if a.AggregationLength != 32 {
			spec["aggregationLength"] = a.AggregationLength
		}
		if a.AggregationLengthV6 != 128 {
			spec["aggregationLengthV6"] = a.AggregationLengthV6
		}
		if a.HasLocalPref {
			spec["localPref"] = a.LocalPref
		}
		var comms []any
		for _, c := range a.Communities {
			comms = append(comms, c.String())
		}
		if len(comms) > 0 {
			spec["communities"] = comms
		}
		setSelectors(spec, "nodeSelectors", a.NodeSelectors)
		add(KindBGPAdvertisement, a.Name, spec)
	}
	names := map[string]int{}
	for _, p := range cfg.Peers {
		name := p.Name
		if name == "" {
			name = "peer-" + strings.NewReplacer(".", "-", ":", "-").Replace(p.Address.String())
			if names[name]++; names[name] > 1 {
				name = fmt.Sprintf("%s-%d", name, names[name])
			}
		}
		if p.Port > maxResourcePeerPort {
			errs = append(errs, Error{Line: p.Line, Msg: fmt.Sprintf("peer %s: peer-port %d does not fit a BGPPeer (its peerPort allows 1-%d): have the router listen on a lower port first", p.Address, p.Port, maxResourcePeerPort)})
			continue
		}
		add(KindBGPPeer, name, peerSpec(p))
		if p.MaxPrefix > 0 {
			out.Dropped = append(out.Dropped, fmt.Sprintf("BGPPeer %s: max-prefix %d has no field in BGPPeer and is dropped (the session accepts any number of prefixes)", name, p.MaxPrefix))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func poolSpec(p *Pool) map[string]any {
	var addrs []any
	for _, r := range p.Ranges {
		addrs = append(addrs, r.String())
	}
	spec := map[string]any{"addresses": addrs}
	if !p.AutoAssign {
		spec["autoAssign"] = false
	}
	if p.AvoidBuggyIPs {
		spec["avoidBuggyIPs"] = true
	}
	sa := map[string]any{}
	if p.Priority > 0 {
		sa["priority"] = p.Priority
	}
	if len(p.Namespaces) > 0 {
		sa["namespaces"] = p.Namespaces
	}
	setSelectors(sa, "namespaceSelectors", p.NamespaceSelectors)
	setSelectors(sa, "serviceSelectors", p.ServiceSelectors)
	if len(sa) > 0 {
		spec["serviceAllocation"] = sa
	}
	return spec
}

func peerSpec(p *Peer) map[string]any {
	spec := map[string]any{"peerAddress": p.Address.String(), "peerASN": p.ASN, "myASN": p.MyASN}
	if p.Port != DefaultPeerPort {
		spec["peerPort"] = p.Port
	}
	if p.HoldTime != DefaultHoldTime {
		spec["holdTime"] = p.HoldTime.String()
	}
	if p.KeepaliveTime != p.HoldTime/3 { // the default, in both formats
		spec["keepaliveTime"] = p.KeepaliveTime.String()
	}
	if p.SourceAddress.IsValid() {
		spec["sourceAddress"] = p.SourceAddress.String()
	}
	if p.RouterID.IsValid() {
		spec["routerID"] = p.RouterID.String()
	}
	if p.Password != "" {
		spec["password"] = p.Password
	}
	if p.EBGPMultiHop {
		spec["ebgpMultiHop"] = true
	}
	if p.GracefulRestart {
		spec["enableGracefulRestart"] = true
	}
	if p.BFDProfile != "" {
		spec["bfdProfile"] = p.BFDProfile
	}
	setSelectors(spec, "nodeSelectors", p.NodeSelectors)
	return spec
}

// setSelectors writes sels under key in the resources' spelling.
func setSelectors(spec map[string]any, key string, sels []Selector) {
	if len(sels) == 0 {
		return
	}
	var list []any
	for _, s := range sels {
		m := map[string]any{}
		if len(s.MatchLabels) > 0 {
			m["matchLabels"] = s.MatchLabels
		}
		var exprs []any
		for _, r := range s.MatchExpressions {
			e := map[string]any{"key": r.Key, "operator": r.Operator}
			if len(r.Values) > 0 {
				e["values"] = r.Values
			}
			exprs = append(exprs, e)
		}
		if len(exprs) > 0 {
			m["matchExpressions"] = exprs
		}
		list = append(list, m)
	}
	spec[key] = list
}
