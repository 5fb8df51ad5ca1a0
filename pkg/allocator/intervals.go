package allocator

import (
	"net/netip"
	"sort"
)

// run is an inclusive run of used addresses.
type run struct{ first, last netip.Addr }

// runSet is a sorted list of disjoint, non-adjacent runs.
type runSet struct{ runs []run }

// find returns the index of the run holding a, or -1 and the index of the
// first run after a.
func (s *runSet) find(a netip.Addr) (int, int) {
	i := sort.Search(len(s.runs), func(i int) bool { return s.runs[i].last.Compare(a) >= 0 })
	if i < len(s.runs) && s.runs[i].first.Compare(a) <= 0 {
		return i, i
	}
	return -1, i
}

// add marks a used, merging with neighbouring runs.
func (s *runSet) add(a netip.Addr) {
	at, next := s.find(a)
	if at >= 0 {
		return
	}
	joinPrev := next > 0 && s.runs[next-1].last.Next() == a
	joinNext := next < len(s.runs) && a.Next() == s.runs[next].first
	switch {
	case joinPrev && joinNext:
		s.runs[next-1].last = s.runs[next].last
		s.runs = append(s.runs[:next], s.runs[next+1:]...)
	case joinPrev:
		s.runs[next-1].last = a
	case joinNext:
		s.runs[next].first = a
	default:
		s.runs = append(s.runs, run{})
		copy(s.runs[next+1:], s.runs[next:])
		s.runs[next] = run{a, a}
	}
}

// remove marks a free, splitting its run if needed.
func (s *runSet) remove(a netip.Addr) {
	i, _ := s.find(a)
	if i < 0 {
		return
	}
	r := s.runs[i]
	switch {
	case r.first == a && r.last == a:
		s.runs = append(s.runs[:i], s.runs[i+1:]...)
	case r.first == a:
		s.runs[i].first = a.Next()
	case r.last == a:
		s.runs[i].last = a.Prev()
	default:
		s.runs = append(s.runs, run{})
		copy(s.runs[i+2:], s.runs[i+1:])
		s.runs[i].last = a.Prev()
		s.runs[i+1] = run{a.Next(), r.last}
	}
}

// nextFree returns the lowest unused address >= from (from itself if free).
// Because runs are merged, the address after a run is always free.
func (s *runSet) nextFree(from netip.Addr) netip.Addr {
	if i, _ := s.find(from); i >= 0 {
		return s.runs[i].last.Next() // invalid past the end of the family
	}
	return from
}
