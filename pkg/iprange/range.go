package iprange

import (
	"errors"
	"fmt"
	"iter"
	"math/big"
	"math/bits"
	"net/netip"
	"strings"
)

// ErrSyntax is wrapped by every parse error, so callers can tell bad input
// from other failures with errors.Is.
var ErrSyntax = errors.New("invalid address range")

// Range is an inclusive range of addresses of one family. The zero Range is
// invalid; get one from Parse, ParseList, FromPrefix or New.
type Range struct {
	first, last netip.Addr
}

// New returns the range [first, last]. Both must be valid, of one family, and
// first must not be after last.
func New(first, last netip.Addr) (Range, error) {
	first, last = first.Unmap(), last.Unmap()
	switch {
	case !first.IsValid() || !last.IsValid():
		return Range{}, fmt.Errorf("%w: invalid bound", ErrSyntax)
	case first.Is4() != last.Is4():
		return Range{}, fmt.Errorf("%w: %s-%s: mixes IPv4 and IPv6", ErrSyntax, first, last)
	case first.Compare(last) > 0:
		return Range{}, fmt.Errorf("%w: %s-%s: start is after end", ErrSyntax, first, last)
	}
	return Range{first: first, last: last}, nil
}

// FromPrefix returns the range a prefix covers (its host bits are ignored).
func FromPrefix(p netip.Prefix) Range {
	p = p.Masked()
	first := p.Addr()
	hostBits := first.BitLen() - p.Bits()
	span := ones(hostBits)
	last, _ := fromAddr(first).add(span)
	return Range{first: first, last: last.toAddr(first.Is4())}
}

// ones returns 2^n - 1.
func ones(n int) u128 {
	switch {
	case n <= 0:
		return u128{}
	case n >= 128:
		return u128{^uint64(0), ^uint64(0)}
	case n >= 64:
		return u128{hi: 1<<(n-64) - 1, lo: ^uint64(0)}
	}
	return u128{lo: 1<<n - 1}
}

// First returns the lowest address of the range.
func (r Range) First() netip.Addr { return r.first }

// Last returns the highest address of the range.
func (r Range) Last() netip.Addr { return r.last }

// Is4 reports whether the range holds IPv4 addresses.
func (r Range) Is4() bool { return r.first.Is4() }

// Is6 reports whether the range holds IPv6 addresses.
func (r Range) Is6() bool { return r.first.Is6() }

// IsValid reports whether r came from a constructor.
func (r Range) IsValid() bool { return r.first.IsValid() }

// Size returns the number of addresses (up to 2^128 for ::/0).
func (r Range) Size() *big.Int {
	d := fromAddr(r.last).sub(fromAddr(r.first)).big()
	return d.Add(d, big.NewInt(1))
}

// SizeFloat returns Size as a float64, handy for metrics and percentages.
func (r Range) SizeFloat() float64 {
	f, _ := new(big.Float).SetInt(r.Size()).Float64()
	return f
}

// Buggy counts the IPv4 addresses of the range that end in .0 or .255,
// which some old clients mistake for network or broadcast addresses (0 for
// an IPv6 range).
func (r Range) Buggy() uint64 {
	if !r.Is4() {
		return 0
	}
	a, b := v4(r.first), v4(r.last)
	// upTo counts x <= n with x%256 == rem, for n >= -1.
	upTo := func(n int64, rem int64) uint64 {
		if n < rem {
			return 0
		}
		return uint64((n-rem)/256 + 1)
	}
	var n uint64
	for _, rem := range []int64{0, 255} {
		n += upTo(b, rem) - upTo(a-1, rem)
	}
	return n
}

func v4(a netip.Addr) int64 {
	b := a.As4()
	return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
}

// Contains reports whether a lies in the range. IPv4-mapped IPv6 addresses
// are treated as IPv4.
func (r Range) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && a.Is4() == r.Is4() && r.first.Compare(a) <= 0 && a.Compare(r.last) <= 0
}

// Overlaps reports whether two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	_, ok := r.Intersect(o)
	return ok
}

// Intersect returns the addresses two ranges share, if any.
func (r Range) Intersect(o Range) (Range, bool) {
	if !r.IsValid() || !o.IsValid() || r.Is4() != o.Is4() {
		return Range{}, false
	}
	first, last := r.first, r.last
	if o.first.Compare(first) > 0 {
		first = o.first
	}
	if o.last.Compare(last) < 0 {
		last = o.last
	}
	if first.Compare(last) > 0 {
		return Range{}, false
	}
	return Range{first: first, last: last}, true
}

// Nth returns the n-th address of the range, counting from 0, without
// iterating; ok is false when n is out of range.
func (r Range) Nth(n *big.Int) (netip.Addr, bool) {
	v, ok := u128FromBig(n)
	if !ok {
		return netip.Addr{}, false
	}
	return r.nth(v)
}

// NthUint64 is Nth for offsets that fit in a uint64.
func (r Range) NthUint64(n uint64) (netip.Addr, bool) { return r.nth(u128{lo: n}) }

func (r Range) nth(v u128) (netip.Addr, bool) {
	a, overflow := fromAddr(r.first).add(v)
	if overflow || a.cmp(fromAddr(r.last)) > 0 {
		return netip.Addr{}, false
	}
	return a.toAddr(r.Is4()), true
}

// Offset returns the position of a in the range (the inverse of Nth).
func (r Range) Offset(a netip.Addr) (*big.Int, bool) {
	if !r.Contains(a) {
		return nil, false
	}
	return fromAddr(a.Unmap()).sub(fromAddr(r.first)).big(), true
}

// All yields every address of the range in order. It is lazy: stop early on
// big ranges.
func (r Range) All() iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		if !r.IsValid() {
			return
		}
		for a := r.first; ; a = a.Next() {
			if !yield(a) || a == r.last {
				return
			}
		}
	}
}

// Prefixes returns the shortest list of CIDR prefixes that covers exactly the
// range, in order.
func (r Range) Prefixes() []netip.Prefix {
	if !r.IsValid() {
		return nil
	}
	var out []netip.Prefix
	width := r.first.BitLen()
	cur, end := fromAddr(r.first), fromAddr(r.last)
	for {
		// The largest aligned block starting at cur that does not pass end.
		host := trailingZeros(cur, width)
		for host > 0 {
			blockEnd, overflow := cur.add(ones(host))
			if !overflow && blockEnd.cmp(end) <= 0 {
				break
			}
			host--
		}
		out = append(out, netip.PrefixFrom(cur.toAddr(r.Is4()), width-host))
		blockEnd, _ := cur.add(ones(host))
		if blockEnd.cmp(end) >= 0 {
			return out
		}
		cur, _ = blockEnd.add(u128{lo: 1})
	}
}

func trailingZeros(v u128, width int) int {
	n := 128
	if v.lo != 0 {
		n = bits.TrailingZeros64(v.lo)
	} else if v.hi != 0 {
		n = 64 + bits.TrailingZeros64(v.hi)
	}
	return min(n, width)
}

// Prefix returns the range as a single prefix when it is exactly one.
func (r Range) Prefix() (netip.Prefix, bool) {
	ps := r.Prefixes()
	if len(ps) != 1 {
		return netip.Prefix{}, false
	}
	return ps[0], true
}

// String renders the range the way an operator would write it: a single IP,
// a CIDR when the range is exactly one prefix, otherwise "first-last".
func (r Range) String() string {
	if !r.IsValid() {
		return "invalid range"
	}
	if r.first == r.last {
		return r.first.String()
	}
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.first.String() + "-" + r.last.String()
}

// Parse parses one element: "IP", "IP-IP" or "IP/bits". Spaces around the
// dash are allowed.
func Parse(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, fmt.Errorf("%w: empty address range", ErrSyntax)
	}
	if a, b, ok := strings.Cut(s, "-"); ok {
		return parseDash(s, strings.TrimSpace(a), strings.TrimSpace(b))
	}
	if strings.Contains(s, "/") {
		return parseCIDR(s)
	}
	a, err := parseAddr(s)
	if err != nil {
		return Range{}, err
	}
	return Range{first: a, last: a}, nil
}

func parseDash(s, a, b string) (Range, error) {
	if a == "" || b == "" {
		return Range{}, fmt.Errorf("%w: %s: a range needs a start and an end, like 192.0.2.10-192.0.2.20", ErrSyntax, s)
	}
	if strings.Contains(b, "-") {
		return Range{}, fmt.Errorf("%w: %s: more than one '-'", ErrSyntax, s)
	}
	if strings.Contains(a, "/") || strings.Contains(b, "/") {
		return Range{}, fmt.Errorf("%w: %s: a range's bounds are addresses, not CIDRs", ErrSyntax, s)
	}
	first, err := parseAddr(a)
	if err != nil {
		return Range{}, err
	}
	last, err := parseAddr(b)
	if err != nil {
		return Range{}, err
	}
	if first.Is4() != last.Is4() {
		return Range{}, fmt.Errorf("%w: %s: mixes IPv4 and IPv6", ErrSyntax, s)
	}
	if first.Compare(last) > 0 {
		return Range{}, fmt.Errorf("%w: %s: start is after end", ErrSyntax, s)
	}
	return Range{first: first, last: last}, nil
}

func parseCIDR(s string) (Range, error) {
	addrPart, bitsPart, _ := strings.Cut(s, "/")
	a, err := parseAddr(addrPart)
	if err != nil {
		return Range{}, err
	}
	p, err := netip.ParsePrefix(a.String() + "/" + bitsPart)
	if err != nil {
		return Range{}, fmt.Errorf("%w: %s: prefix length must be 0-%d", ErrSyntax, s, a.BitLen())
	}
	if p.Masked() != p {
		// Suggest both readings: the aligned block that starts at the address,
		// and the network the address belongs to.
		bitsFromAddr := a.BitLen() - trailingZeros(fromAddr(a), a.BitLen())
		tight := netip.PrefixFrom(a, max(bitsFromAddr, p.Bits()))
		return Range{}, fmt.Errorf("%w: %s has host bits set: did you mean %s or %s?", ErrSyntax, s, tight, p.Masked())
	}
	return FromPrefix(p), nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %s: not an IP address", ErrSyntax, s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: %s: zones (%%%s) are not allowed in pool addresses", ErrSyntax, s, a.Zone())
	}
	return a.Unmap(), nil
}
