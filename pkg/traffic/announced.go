package traffic

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Announced is the speaker's side: which Services each address this node
// announces belongs to. The speaker's loop changes it (Add, Remove,
// Planned); WriteLoop, the metrics collector and the Lease read it. A lock
// guards it: the readers run on their own goroutines and each change is
// O(1).
type Announced struct {
	mu      sync.Mutex
	by      map[netip.Addr]map[announcement]bool
	version uint64 // of the address set, not of the Services
	planned bool
	changed chan struct{} // a token: WriteLoop has something to write
}

// announcement is one Service's announcement of an address by one
// protocol: a Service may be announced by layer2 and by BGP at once.
type announcement struct{ service, protocol string }

// NewAnnounced returns an empty Announced.
func NewAnnounced() *Announced {
	return &Announced{by: map[netip.Addr]map[announcement]bool{}, changed: make(chan struct{}, 1)}
}

// Add records that this node announces ip for service ("namespace/name")
// by protocol.
func (a *Announced) Add(service, protocol string, ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	svcs := a.by[ip]
	if svcs == nil {
		svcs = map[announcement]bool{}
		a.by[ip] = svcs
		a.touch()
	}
	svcs[announcement{service, protocol}] = true
}

// Remove records that this node no longer announces ip for service by
// protocol.
func (a *Announced) Remove(service, protocol string, ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	svcs := a.by[ip]
	if svcs == nil {
		return
	}
	delete(svcs, announcement{service, protocol})
	if len(svcs) == 0 {
		delete(a.by, ip)
		a.touch()
	}
}

// Planned says the speaker made a plan: from then on the file says what
// it announces, even nothing (before, the counter keeps what it holds, so
// that a restarting speaker does not reset the counts).
func (a *Announced) Planned() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.planned {
		a.planned = true
		a.touch()
	}
}

func (a *Announced) touch() {
	a.version++
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// Services returns, for each announced address, its Services (sorted).
func (a *Announced) Services() map[netip.Addr][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[netip.Addr][]string, len(a.by))
	for ip, svcs := range a.by {
		l := make([]string, 0, len(svcs))
		for s := range svcs {
			l = append(l, s.service)
		}
		slices.Sort(l)
		out[ip] = slices.Compact(l)
	}
	return out
}

func (a *Announced) addresses() (ips []netip.Addr, version uint64, planned bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ips = make([]netip.Addr, 0, len(a.by))
	for ip := range a.by {
		ips = append(ips, ip)
	}
	return ips, a.version, a.planned
}

// WriteRetry is how long WriteLoop waits to try a failed write again.
const WriteRetry = time.Second

// WriteLoop writes the addresses file in dir after each change, at most
// once per every (a bulk of changes is one write), until ctx ends. A
// failed write is tried again after WriteRetry, and each new error is
// logged once.
func (a *Announced) WriteLoop(ctx context.Context, dir string, every time.Duration, log *slog.Logger) {
	var written uint64
	var lastErr string
	retry := time.NewTimer(WriteRetry)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.changed:
		case <-retry.C:
		}
		select { // let the bulk settle
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		ips, version, planned := a.addresses()
		if !planned || version == written {
			continue
		}
		if err := WriteAddresses(dir, ips); err != nil {
			if msg := err.Error(); msg != lastErr {
				log.Error("cannot tell the traffic counter what this node announces", "error", err)
				lastErr = msg
			}
			retry.Reset(WriteRetry)
			continue
		}
		if lastErr != "" {
			log.Info("the traffic counter is told what this node announces again")
			lastErr = ""
		}
		written = version
	}
}
