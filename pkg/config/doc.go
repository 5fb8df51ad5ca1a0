// Package config parses and validates the contents of the ConfigMap
// metallb-system/config (key "config"): the YAML format MetalLB used up to
// v0.12, plus a few documented additive extensions.
//
// Parse decodes strictly (an unknown key is an error naming the key and its
// line), converts every value to a typed form (netip addresses, iprange
// ranges, durations, communities, selectors), applies defaults, then runs the
// cross-checks that need the whole document (overlapping pools, references to
// communities and BFD profiles, duplicate peers). It reports every problem it
// finds, each with its line, not just the first.
//
// The package is pure: no Kubernetes, no network, no clock.
package config
