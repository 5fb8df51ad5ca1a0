// Package allocator decides which addresses LoadBalancer Services get. It is
// pure: pools come in from the typed config, requests come in as plain
// values, assignments and typed errors go out. No Kubernetes, no metrics, no
// clock.
//
// Memory is proportional to the addresses in use, never to pool size: each
// pool range keeps a sorted list of merged runs of used addresses, so the
// lowest free address is found right after the first run (a binary search
// when a start point is given) and an IPv6 /64 pool costs what a /30 does.
package allocator
