// Package speaker is the speaker mode: it joins what it knows (Services with
// addresses, their EndpointSlices, Nodes, which speakers are alive, the
// config) into the set of addresses this node must announce, and hands that
// set to the announcers. For layer2 the pure election picks one owner per
// address (Desired) and layer2.Announcer answers ARP/NDP for it; for BGP
// every node that qualifies advertises (DesiredBGP, PeersFor) through
// bgp.Manager, so routers spread traffic with ECMP.
//
// Liveness of speakers: each speaker renews a Lease
// (metallb-speaker-<node>) every LeaseRenew; a speaker whose Lease is older
// than LeaseDuration is dead, so its addresses move within about
// LeaseDuration — as judged only by speakers that are themselves in touch
// with the API server. A speaker that cannot renew its own Lease keeps its
// layer2 claims (the API server may be down for everyone) but yields an
// address as soon as another host announces it (a takeover by a speaker
// that saw its Lease expire). BGP routes do not depend on the Lease: routers
// watch the sessions themselves (hold time), and an API server outage must
// not withdraw every route of the cluster.
package speaker
