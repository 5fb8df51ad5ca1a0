// Package iprange parses and does arithmetic on the address ranges operators
// write in pool configurations: a single IP ("192.0.2.10"), an inclusive range
// ("192.0.2.10-192.0.2.20"), a CIDR ("192.0.2.0/28"), and comma- or
// space-separated lists of them, for IPv4 and IPv6.
//
// A Range is two netip.Addr bounds. Sizes, offsets and "n-th address" use
// 128-bit arithmetic, so an IPv6 /64 (or /0) is as cheap as a /30: nothing is
// ever materialised. The package imports nothing from Kubernetes or the network.
package iprange
