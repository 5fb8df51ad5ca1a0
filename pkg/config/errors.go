package config

import (
	"fmt"
	"strings"
)

// Error is one problem in a config, with the line it is on (0 when the
// problem is about the document as a whole).
type Error struct {
	Line int    `json:"line,omitempty"`
	Msg  string `json:"message"`
	// Object is the metallb.io resource the problem is in ("Kind/name"),
	// empty for the ConfigMap's config; Msg names the field.
	Object string `json:"object,omitempty"`
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Errors is every problem Parse found, in line order. Parse returns it as its
// error; use errors.As to get the list.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// suggest returns the known key closest to an unknown one, when it is close
// enough to be a likely typo.
func suggest(unknown string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(unknown, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
