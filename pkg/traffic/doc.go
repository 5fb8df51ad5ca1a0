// Package traffic is the pure part of counting, per address a node
// announces, the packets and bytes that node receives for it: the
// addresses file the speaker writes and the counting container reads, the
// rates the speaker publishes on its Lease (Sampler, LeaseAnnotation) and
// the set of what the node announces (Announced). No kernel, network or
// cluster here.
//
// The kernel counts (package counting, `metallb traffic-counter`): an
// nftables table of our own (inet family) holds a set per address family
// whose elements each carry a counter, and one rule per family in a chain
// on prerouting at priority raw looks every packet's destination up in
// it. Priority raw runs before kube-proxy's DNAT, so the destination is
// still the LoadBalancer address; the chain issues no verdict, so nothing
// else in netfilter changes. Nothing is done per packet in user space.
//
// Two processes share the work, so that only one holds CAP_NET_ADMIN:
//   - the speaker writes the addresses its node announces to a file in a
//     directory both containers mount (Announced.WriteLoop), and turns the
//     counts into metrics and into its Lease;
//   - the counting container keeps the table in step with that file,
//     re-creates it when someone removed it (`nft flush ruleset`), and
//     serves the counts on a unix socket in the same directory.
//
// What is counted: every IP packet (its whole length) that reaches this
// node's prerouting hook with an announced address as destination,
// whatever happens to it afterwards. Not counted: replies, traffic that
// an eBPF datapath (Cilium's kube-proxy replacement, ...) translates
// before netfilter sees it, and packets sent to an address this node does
// not announce.
package traffic
