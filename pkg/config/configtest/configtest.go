// Package configtest makes configurations for tests and benchmarks: the
// hostile ones that must stay cheap to parse and validate.
package configtest

import (
	"fmt"
	"strings"
)

// Input is a named config text.
type Input struct {
	Name  string // says what it is
	Short string // a benchmark's name for it
	Text  string
}

// Hostile returns configs built to be expensive: 1 MiB of one range listed
// over and over, 10,000 pools, 1,000 peers.
func Hostile() []Input {
	var over strings.Builder
	over.WriteString("address-pools:\n- name: big\n  protocol: layer2\n  addresses:\n")
	n := 0
	for over.Len() < 1<<20-16 {
		over.WriteString("  - 10.0.0.0/8\n")
		n++
	}
	var pools strings.Builder
	pools.WriteString("address-pools:\n")
	for i := range 10000 {
		fmt.Fprintf(&pools, "- {name: p%d, protocol: layer2, addresses: [10.%d.%d.%d/28]}\n", i, i/4096, i/16%256, i%16*16)
	}
	var peers strings.Builder
	peers.WriteString("peers:\n")
	for i := range 1000 {
		fmt.Fprintf(&peers, "- {peer-address: 10.%d.%d.1, peer-asn: %d, my-asn: 64500}\n", i/256, i%256, 64501+i)
	}
	peers.WriteString("address-pools:\n- {name: p, protocol: bgp, addresses: [10.255.0.0/16]}\n")
	return []Input{
		{fmt.Sprintf("1 MiB: 10.0.0.0/8 listed %d times", n), "overlap1MiB", over.String()},
		{"10,000 pools", "pools10000", pools.String()},
		{"1,000 peers", "peers1000", peers.String()},
	}
}
