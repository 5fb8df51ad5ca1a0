// Package announce decides what a speaker announces. It is pure: no
// Kubernetes, no sockets, no clock of its own (the time comes in with each
// Env), so every decision can be tested in microseconds. Core keeps the
// world it is told by difference and re-decides, at each plan, only the
// addresses a change touched: a bulk of N Services costs O(N).
//
// Layer2 ranks the candidate nodes of every address (election.Order over
// the eligible nodes that match the pool and, for externalTrafficPolicy
// Local, hold a ready endpoint). Core turns rankings into claims without
// ever letting two nodes answer at once: the old owner stops, then releases
// the address to the new owner, which only then announces it; a speaker
// that has just started waits for the releases of the speakers that may be
// answering for its addresses (at most HandOverTimeout). DesiredBGP and
// PeersFor give the routes and sessions of BGP mode, where every qualifying
// node advertises.
package announce
