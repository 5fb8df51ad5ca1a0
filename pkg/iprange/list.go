package iprange

import (
	"cmp"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

var spacedDash = regexp.MustCompile(`\s*-\s*`)

// ParseList parses a comma- and/or space-separated list of elements, e.g.
// "192.0.2.10-192.0.2.20, 198.51.100.0/28 2001:db8::/120". Every bad element
// is reported, joined in one error.
func ParseList(s string) ([]Range, error) {
	s = spacedDash.ReplaceAllString(strings.TrimSpace(s), "-")
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty address range", ErrSyntax)
	}
	var out []Range
	var errs []error
	for _, f := range fields {
		r, err := Parse(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Overlap describes two ranges of a list that share addresses.
type Overlap struct {
	A, B   Range // the two ranges, in list order
	Shared Range // the addresses both hold
}

func (o Overlap) String() string {
	return fmt.Sprintf("%s and %s overlap on %s", o.A, o.B, o.Shared)
}

// Overlaps returns every pair of ranges in rs that share addresses. It sorts a
// copy, so it is O(n log n) plus the number of overlaps.
func Overlaps(rs []Range) []Overlap {
	type item struct {
		r   Range
		idx int
	}
	items := make([]item, len(rs))
	for i, r := range rs {
		items[i] = item{r, i}
	}
	slices.SortFunc(items, func(a, b item) int {
		if a.r.Is4() != b.r.Is4() {
			if a.r.Is4() {
				return -1
			}
			return 1
		}
		return cmp.Or(a.r.first.Compare(b.r.first), a.idx-b.idx)
	})
	var out []Overlap
	for i := range items {
		for j := i + 1; j < len(items); j++ {
			shared, ok := items[i].r.Intersect(items[j].r)
			if !ok {
				if items[i].r.Is4() != items[j].r.Is4() || items[j].r.first.Compare(items[i].r.last) > 0 {
					break
				}
				continue
			}
			a, b := items[i], items[j]
			if a.idx > b.idx {
				a, b = b, a
			}
			out = append(out, Overlap{A: a.r, B: b.r, Shared: shared})
		}
	}
	slices.SortFunc(out, func(x, y Overlap) int {
		return cmp.Or(x.A.first.Compare(y.A.first), x.B.first.Compare(y.B.first))
	})
	return out
}

// Total returns the number of addresses in rs (overlaps counted twice).
func Total(rs []Range) *big.Int {
	t := new(big.Int)
	for _, r := range rs {
		t.Add(t, r.Size())
	}
	return t
}

// ContainsAny reports whether any range holds a.
func ContainsAny(rs []Range, a netip.Addr) bool {
	for _, r := range rs {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// Join renders rs as a comma-separated list.
func Join(rs []Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}
