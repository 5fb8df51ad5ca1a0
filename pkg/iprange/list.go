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
	if s != "" && !strings.ContainsAny(s, " ,\t\n") {
		// One range, the common case: no list to split.
		r, err := Parse(s)
		if err != nil {
			return nil, err
		}
		return []Range{r}, nil
	}
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
	// IA and IB are the indexes of A and B in the list.
	IA, IB int
}

func (o Overlap) String() string {
	return fmt.Sprintf("%s and %s overlap on %s", o.A, o.B, o.Shared)
}

// Overlaps finds the ranges of rs that share addresses with another: each
// range that overlaps one that starts before it (or at the same address,
// earlier in the list) is counted once, paired with the earlier range that
// reaches furthest. It returns the first limit pairs (by address; limit < 0:
// all) and how many there are, so a list of n copies of one range costs a
// sort and one sweep, O(n log n), never n² pairs.
func Overlaps(rs []Range, limit int) (first []Overlap, total int) {
	idx := make([]int, len(rs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		ra, rb := &rs[a], &rs[b]
		if ra.Is4() != rb.Is4() {
			if ra.Is4() {
				return -1
			}
			return 1
		}
		return cmp.Or(ra.first.Compare(rb.first), a-b)
	})
	reach := -1 // index of the range seen so far that ends last, in this family
	for _, i := range idx {
		r := &rs[i]
		if reach >= 0 && rs[reach].Is4() == r.Is4() {
			if shared, ok := rs[reach].Intersect(*r); ok {
				total++
				if limit < 0 || len(first) < limit {
					a, b := min(reach, i), max(reach, i)
					first = append(first, Overlap{A: rs[a], B: rs[b], Shared: shared, IA: a, IB: b})
				}
			}
			if r.last.Compare(rs[reach].last) <= 0 {
				continue
			}
		}
		reach = i
	}
	return first, total
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
