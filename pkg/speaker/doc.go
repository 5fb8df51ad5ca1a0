// Package speaker is the speaker mode: it joins what it knows (Services with
// addresses, their EndpointSlices, Nodes, which speakers are alive, the
// config) into the set of addresses this node must announce, and hands that
// set to an Announcer. For layer2 the pure election picks one owner per
// address.
//
// Liveness of speakers: each speaker renews a Lease
// (metallb-speaker-<node>) every LeaseRenew; a speaker whose Lease is older
// than LeaseDuration is dead, so its addresses move within about
// LeaseDuration. A speaker that cannot renew its own Lease for LeaseDuration
// withdraws every announcement, so a partitioned node stops answering before
// another takes over.
package speaker
