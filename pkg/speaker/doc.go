// Package speaker is the speaker mode's adapter: it feeds what it learns
// (Services with addresses, their EndpointSlices, Nodes, the accepted
// config, which speakers are alive, the releases other speakers send) to
// the pure core (announce.Core) and carries out its plan: layer2 claims to
// layer2.Announcer, releases through members.List, BGP sessions and routes
// to bgp.Manager, Events and metrics.
//
// One goroutine, Run's loop, owns the core and the speaker's state; every
// callback only queues an event for it (inbox), so nothing is locked
// around a decision and no packet is sent under a lock the receive path
// takes. The announcers and the membership are interfaces (Layer2,
// BGPAnnouncer, Members): tests pass fakes.
//
// Liveness of speakers is memberlist's (package members): no API write at
// steady state. The Lease metallb-speaker-<node>, renewed every 10 s, only
// tells `metallb status` that the speaker runs and carries its BGP sessions.
// A speaker that sees none of the peers it knew checks the API server; cut
// off from both, it withdraws its layer2 addresses. BGP routes do not depend
// on the membership: routers watch the sessions themselves (hold time).
package speaker
