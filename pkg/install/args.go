package install

import (
	"fmt"
	"strings"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// ParseRangeArgs turns the hook's positional arguments into ranges. MicroK8s
// splits "metallb:A-B" on every colon, so "metallb:2001:db8::1-2001:db8::9"
// arrives as "2001" "db8" "" "1-2001" "db8" "" "9": when the words do not
// parse one by one, they are re-joined with colons and parsed again. Each
// word may itself be a comma list.
func ParseRangeArgs(words []string) ([]iprange.Range, error) {
	if len(words) == 0 {
		return nil, fmt.Errorf("%w: no address range given", iprange.ErrSyntax)
	}
	var out []iprange.Range
	var firstErr error
	for _, w := range words {
		rs, err := iprange.ParseList(w)
		if err != nil {
			firstErr = err
			break
		}
		out = append(out, rs...)
	}
	if firstErr == nil {
		return out, nil
	}
	if len(words) > 1 {
		rs, err := iprange.ParseList(strings.Join(words, ":"))
		if err == nil {
			return rs, nil
		}
		if !strings.Contains(strings.Join(words, ""), ".") {
			return nil, err // IPv6 pieces: the joined form is what the user typed
		}
	}
	return nil, firstErr
}
