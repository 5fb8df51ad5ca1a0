package allocator

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Family is an IP family.
type Family int

// The IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string { return fmt.Sprintf("IPv%d", int(f)) }

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// FamilyPolicy mirrors spec.ipFamilyPolicy.
type FamilyPolicy string

// The family policies Kubernetes defines.
const (
	SingleStack      FamilyPolicy = "SingleStack"
	PreferDualStack  FamilyPolicy = "PreferDualStack"
	RequireDualStack FamilyPolicy = "RequireDualStack"
)

// Port is one (protocol, port) a Service exposes.
type Port struct {
	Protocol string // TCP, UDP, SCTP
	Port     int32
}

// Service is what the allocator needs to know about a Service.
type Service struct {
	Key       string // namespace/name
	Namespace string
	Labels    map[string]string
	// NamespaceLabels are the labels of its namespace (pools'
	// namespaceSelectors).
	NamespaceLabels map[string]string
	// Pool is the pool asked for by annotation ("" for any auto-assign pool).
	Pool string
	// Requested are addresses asked for (annotation or spec.loadBalancerIP):
	// exactly these or nothing.
	Requested []netip.Addr
	// SharingKey is the allow-shared-ip annotation.
	SharingKey string
	Ports      []Port
	// Local is externalTrafficPolicy: Local.
	Local bool
	// Selector is the Service's pod selector in canonical text form; Local
	// Services share an IP only with equal selectors.
	Selector string
	// Families is spec.ipFamilies (empty: IPv4). Policy is spec.ipFamilyPolicy.
	Families []Family
	Policy   FamilyPolicy
}

// Annotations MetalLB defines, in their historical and current spellings.
const (
	AnnotationPool       = "metallb.universe.tf/address-pool"
	AnnotationPoolNew    = "metallb.io/address-pool"
	AnnotationIPs        = "metallb.universe.tf/loadBalancerIPs"
	AnnotationIPsNew     = "metallb.io/loadBalancerIPs"
	AnnotationSharing    = "metallb.universe.tf/allow-shared-ip"
	AnnotationSharingNew = "metallb.io/allow-shared-ip"
	// AnnotationAllocatedFrom is written, not read: the pool a Service's
	// addresses come from, as MetalLB v0.13+ shows it.
	AnnotationAllocatedFrom = "metallb.io/ip-allocated-from-pool"
	annotationIPsExplains   = "a comma-separated list of at most one IPv4 and one IPv6 address"
)

// Request is what a Service's annotations and spec ask of the allocator.
type Request struct {
	Pool       string
	Requested  []netip.Addr
	SharingKey string
}

// ParseRequest reads the allocator's annotations (either spelling) and the
// deprecated spec.loadBalancerIP. Errors wrap ErrBadRequest and say which
// annotation is wrong and how.
func ParseRequest(annotations map[string]string, specLoadBalancerIP string) (Request, error) {
	var r Request
	var err error
	if r.Pool, err = pick(annotations, AnnotationPool, AnnotationPoolNew); err != nil {
		return Request{}, err
	}
	if r.SharingKey, err = pick(annotations, AnnotationSharing, AnnotationSharingNew); err != nil {
		return Request{}, err
	}
	ips, err := pick(annotations, AnnotationIPs, AnnotationIPsNew)
	if err != nil {
		return Request{}, err
	}
	specIP := strings.TrimSpace(specLoadBalancerIP)
	switch {
	case ips != "" && specIP != "":
		return Request{}, fmt.Errorf("%w: %s and spec.loadBalancerIP are both set: keep only the annotation (spec.loadBalancerIP is deprecated)", ErrBadRequest, AnnotationIPs)
	case ips != "":
		r.Requested, err = parseIPs(ips)
		if err != nil {
			return Request{}, err
		}
	case specIP != "":
		a, perr := netip.ParseAddr(specIP)
		if perr != nil {
			return Request{}, fmt.Errorf("%w: spec.loadBalancerIP %q is not an IP address", ErrBadRequest, specIP)
		}
		r.Requested = []netip.Addr{a.Unmap()}
	}
	return r, nil
}

// pick returns the value of either spelling of an annotation; both with
// different values is an error.
func pick(ann map[string]string, old, cur string) (string, error) {
	a, b := strings.TrimSpace(ann[old]), strings.TrimSpace(ann[cur])
	if a != "" && b != "" && a != b {
		return "", fmt.Errorf("%w: %s=%q and %s=%q disagree: keep one", ErrBadRequest, old, a, cur, b)
	}
	if a != "" {
		return a, nil
	}
	return b, nil
}

func parseIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%w: %s: %q is not an IP address (want %s)", ErrBadRequest, AnnotationIPs, f, annotationIPsExplains)
		}
		a = a.Unmap()
		if slices.ContainsFunc(out, func(b netip.Addr) bool { return familyOf(b) == familyOf(a) }) {
			return nil, fmt.Errorf("%w: %s: %q has two %s addresses (want %s)", ErrBadRequest, AnnotationIPs, s, familyOf(a), annotationIPsExplains)
		}
		out = append(out, a)
	}
	return out, nil
}

// wantFamilies returns the families to assign, in order, and how many of them
// are required (the rest are best effort). It follows spec.ipFamilies, which
// the API server fills from the policy and what the cluster supports.
func (s *Service) wantFamilies() (fams []Family, required int) {
	fams = s.Families
	if len(fams) == 0 {
		fams = []Family{IPv4}
	}
	switch s.Policy {
	case RequireDualStack:
		return fams, len(fams)
	case PreferDualStack:
		return fams, 1
	}
	return fams[:1], 1
}
