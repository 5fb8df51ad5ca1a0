// Package election picks, for each address, the node that announces it in
// layer2 mode. It is pure and stateless: every speaker computes the same
// answer from the same inputs, with no coordination.
//
// The choice is rendezvous (highest-random-weight) hashing: each candidate
// node gets a score hash(node, ip) and the highest score wins. Removing a
// node moves only the addresses it owned; adding one takes over only the
// addresses it now scores highest on. Services that share an address share
// its owner, since the address alone is hashed.
package election

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
)

// score is the rendezvous weight of a node for an address.
func score(node string, ip netip.Addr) uint64 {
	h := sha256.New()
	h.Write([]byte(node))
	h.Write([]byte{0})
	b := ip.As16()
	h.Write(b[:])
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Order returns the candidates ranked for ip, owner first. Ties (which
// practically never happen) are broken by name so the order is total.
func Order(ip netip.Addr, candidates []string) []string {
	type ranked struct {
		node  string
		score uint64
	}
	rs := make([]ranked, len(candidates))
	for i, n := range candidates {
		rs[i] = ranked{n, score(n, ip)}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return strings.Compare(a.node, b.node)
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.node
	}
	return out
}

// Owner returns the node that announces ip, or "" with no candidates.
func Owner(ip netip.Addr, candidates []string) string {
	best, bestScore := "", uint64(0)
	for _, n := range candidates {
		s := score(n, ip)
		if best == "" || s > bestScore || (s == bestScore && n < best) {
			best, bestScore = n, s
		}
	}
	return best
}
