package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder walks a YAML node tree, collecting every error with its line.
type decoder struct {
	errs Errors
	// object is the metallb.io resource being read ("Kind/name"), for
	// its errors; pending are its communities to resolve at the end.
	object  string
	pending []pendingCommunity
	// peerChoices are the BGPAdvertisements' peers, checked at the end.
	peerChoices []peerChoice
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, Error{Line: line, Msg: fmt.Sprintf(format, args...), Object: d.object})
}

// field handles the value of one known key.
type field func(v *yaml.Node)

// mapping checks that n is a mapping and hands each value to the handler of
// its key, reporting unknown and repeated keys.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]field) bool {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping of keys to values, got %s", path, describe(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		h, ok := fields[k.Value]
		switch {
		case !ok:
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			slices.Sort(known)
			msg := fmt.Sprintf("%s: unknown key %q", path, k.Value)
			if s := suggest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += "; known keys: " + strings.Join(known, ", ")
			}
			d.errorf(k, "%s", msg)
		case seen[k.Value]:
			d.errorf(k, "%s: key %q appears twice", path, k.Value)
		default:
			seen[k.Value] = true
			h(v)
		}
	}
	return true
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, "%s: want %s, got %s", path, want, describe(n))
		return false
	}
	return true
}

func (d *decoder) str(n *yaml.Node, path string) string {
	if !d.scalar(n, path, "a string") {
		return ""
	}
	return n.Value
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	if !d.scalar(n, path, "true or false") {
		return false
	}
	b, err := strconv.ParseBool(n.Value)
	if n.Tag != "!!bool" || err != nil {
		d.errorf(n, "%s: want true or false, got %q", path, n.Value)
	}
	return b
}

// integer parses an integer in [lo, hi]; on error it reports it and returns 0.
func (d *decoder) integer(n *yaml.Node, path string, lo, hi int64) int64 {
	return d.intOr(n, path, lo, hi, 0)
}

// intOr parses an integer in [lo, hi]; on error it reports it and returns def,
// so that later checks do not pile up on a value that was never given.
func (d *decoder) intOr(n *yaml.Node, path string, lo, hi, def int64) int64 {
	if !d.scalar(n, path, "a number") {
		return def
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || n.Tag != "!!int" {
		d.errorf(n, "%s: want a whole number, got %q", path, n.Value)
		return def
	}
	if v < lo || v > hi {
		d.errorf(n, "%s: %d is out of range %d-%d", path, v, lo, hi)
		return def
	}
	return v
}

func (d *decoder) uint32(n *yaml.Node, path string, lo, hi int64) uint32 {
	return uint32(d.integer(n, path, lo, hi))
}

// list checks that n is a sequence and calls each for its items.
func (d *decoder) list(n *yaml.Node, path string, each func(i int, item *yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		if n.Tag == "!!null" {
			return
		}
		d.errorf(n, "%s: want a list, got %s", path, describe(n))
		return
	}
	for i, item := range n.Content {
		each(i, item)
	}
}

func (d *decoder) strings(n *yaml.Node, path string) []string {
	var out []string
	d.list(n, path, func(i int, item *yaml.Node) {
		if s := d.str(item, fmt.Sprintf("%s[%d]", path, i)); s != "" {
			out = append(out, s)
		}
	})
	return out
}

// labelKey follows Kubernetes's qualified-name rules closely enough to catch
// typos: optional DNS prefix, then a name of alphanumerics, '-', '_', '.'.
var labelKey = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
var labelValue = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)

// selectorKeys are how a format spells a selector's two parts.
type selectorKeys struct{ labels, expressions string }

var (
	v012Selector     = selectorKeys{"match-labels", "match-expressions"}
	resourceSelector = selectorKeys{"matchLabels", "matchExpressions"}
)

// selectors reads a v0.12 list of selectors (match-labels, ...).
func (d *decoder) selectors(n *yaml.Node, path string) []Selector {
	return d.selectorList(n, path, v012Selector)
}

// labelSelectors reads a list of Kubernetes LabelSelectors (matchLabels, ...).
func (d *decoder) labelSelectors(n *yaml.Node, path string) []Selector {
	return d.selectorList(n, path, resourceSelector)
}

func (d *decoder) selectorList(n *yaml.Node, path string, keys selectorKeys) []Selector {
	var out []Selector
	d.list(n, path, func(i int, item *yaml.Node) {
		out = append(out, d.selector(item, fmt.Sprintf("%s[%d]", path, i), keys))
	})
	return out
}

func (d *decoder) selector(n *yaml.Node, path string, keys selectorKeys) Selector {
	var s Selector
	d.mapping(n, path, map[string]field{
		keys.labels: func(v *yaml.Node) {
			p := path + "." + keys.labels
			if v.Kind != yaml.MappingNode {
				d.errorf(v, "%s: want a mapping of label to value, got %s", p, describe(v))
				return
			}
			s.MatchLabels = map[string]string{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, val := v.Content[i], v.Content[i+1]
				d.checkLabel(k, p, k.Value, d.str(val, p+"."+k.Value))
				s.MatchLabels[k.Value] = val.Value
			}
		},
		keys.expressions: func(v *yaml.Node) {
			d.list(v, path+"."+keys.expressions, func(i int, item *yaml.Node) {
				s.MatchExpressions = append(s.MatchExpressions, d.requirement(item, fmt.Sprintf("%s.%s[%d]", path, keys.expressions, i)))
			})
		},
	})
	return s
}

func (d *decoder) checkLabel(n *yaml.Node, path, key, value string) {
	if !labelKey.MatchString(key) {
		d.errorf(n, "%s: %q is not a valid label key", path, key)
	}
	if !labelValue.MatchString(value) {
		d.errorf(n, "%s: %q is not a valid label value (63 characters at most: letters, digits, '-', '_', '.')", path, value)
	}
}

func (d *decoder) requirement(n *yaml.Node, path string) Requirement {
	var r Requirement
	ok := d.mapping(n, path, map[string]field{
		"key":      func(v *yaml.Node) { r.Key = d.str(v, path+".key") },
		"operator": func(v *yaml.Node) { r.Operator = d.str(v, path+".operator") },
		"values":   func(v *yaml.Node) { r.Values = d.strings(v, path+".values") },
	})
	if !ok {
		return r
	}
	if r.Key == "" {
		d.errorf(n, "%s: key is required", path)
	} else if !labelKey.MatchString(r.Key) {
		d.errorf(n, "%s: %q is not a valid label key", path, r.Key)
	}
	switch r.Operator {
	case "In", "NotIn":
		if len(r.Values) == 0 {
			d.errorf(n, "%s: operator %s needs at least one value", path, r.Operator)
		}
	case "Exists", "DoesNotExist":
		if len(r.Values) > 0 {
			d.errorf(n, "%s: operator %s takes no values", path, r.Operator)
		}
	default:
		d.errorf(n, "%s: operator %q: want In, NotIn, Exists or DoesNotExist", path, r.Operator)
	}
	return r
}

// parseCommunity parses "ASN:value" (16 bits each) or "large:a:b:c" (32 bits
// each).
func parseCommunity(s string) (Community, error) {
	if rest, ok := strings.CutPrefix(s, "large:"); ok {
		parts := strings.Split(rest, ":")
		if len(parts) != 3 {
			return Community{}, fmt.Errorf("large community %q: want large:GLOBAL:LOCAL1:LOCAL2", s)
		}
		var c Community
		c.Large = true
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return Community{}, fmt.Errorf("large community %q: %q is not a number in 0-%d", s, p, uint32(math.MaxUint32))
			}
			c.Parts[i] = uint32(v)
		}
		return c, nil
	}
	a, b, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(b, ":") {
		return Community{}, errors.New("want ASN:VALUE (e.g. 64512:100), large:GLOBAL:LOCAL1:LOCAL2, or a bgp-communities alias")
	}
	var c Community
	for i, p := range []string{a, b} {
		v, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return Community{}, fmt.Errorf("%q is not a number in 0-65535 (use large:... for 32-bit parts)", p)
		}
		c.Parts[i] = uint32(v)
	}
	return c, nil
}
