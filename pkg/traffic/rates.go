package traffic

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LeaseAnnotation, on a speaker's Lease, carries the traffic of the
// addresses its node announces, for `metallb status`: one line per
// address, "IP PACKETS BYTES PACKETS/S BYTES/S WINDOW-SECONDS", busiest
// first. It rides on the Lease's renewals: it is never a write of its own.
const LeaseAnnotation = "metallb.io/traffic"

// MaxLeaseAddresses bounds the annotation (about 60 bytes a line): the
// busiest addresses are kept.
const MaxLeaseAddresses = 1000

// Window is the span rates are taken over: the rate of an address is
// since the sample closest to Window ago (shorter while the speaker is
// younger than that).
const Window = time.Minute

// Rate is an address's totals and its rate over Window (or less).
type Rate struct {
	IP netip.Addr
	Count
	PacketsPerSecond float64
	BytesPerSecond   float64
	Window           time.Duration // what the rate was taken over; 0: no rate yet
}

// Sampler turns successive counts into rates. It is used from one
// goroutine (the Lease's).
type Sampler struct {
	samples []sample
}

type sample struct {
	at     time.Time
	counts map[netip.Addr]Count
}

// Add records the counts read at at and returns each address's Rate,
// busiest first (bytes per second, then total bytes), addresses without
// traffic left out, at most MaxLeaseAddresses.
func (s *Sampler) Add(at time.Time, counts map[netip.Addr]Count) []Rate {
	s.samples = append(s.samples, sample{at: at, counts: counts})
	// Keep the newest sample at least Window old, and everything after.
	for len(s.samples) > 2 && !s.samples[1].at.After(at.Add(-Window)) {
		s.samples = s.samples[1:]
	}
	var base *sample
	if len(s.samples) > 1 {
		base = &s.samples[0]
	}
	out := make([]Rate, 0, len(counts))
	for ip, c := range counts {
		if c.Packets == 0 {
			continue
		}
		r := Rate{IP: ip, Count: c}
		if base != nil {
			dt := at.Sub(base.at)
			b := base.counts[ip]
			if c.Packets < b.Packets || c.Bytes < b.Bytes {
				b = Count{} // counted again from 0 (the table was built again)
			}
			if dt > 0 {
				r.Window = dt
				r.PacketsPerSecond = float64(c.Packets-b.Packets) / dt.Seconds()
				r.BytesPerSecond = float64(c.Bytes-b.Bytes) / dt.Seconds()
			}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Rate) int {
		return cmp.Or(cmp.Compare(b.BytesPerSecond, a.BytesPerSecond), cmp.Compare(b.Bytes, a.Bytes), a.IP.Compare(b.IP))
	})
	if len(out) > MaxLeaseAddresses {
		out = out[:MaxLeaseAddresses]
	}
	return out
}

// FormatLease renders rates as LeaseAnnotation's value.
func FormatLease(rates []Rate) string {
	var b strings.Builder
	for _, r := range rates {
		fmt.Fprintf(&b, "%s %d %d %.1f %.1f %d\n", r.IP, r.Packets, r.Bytes, r.PacketsPerSecond, r.BytesPerSecond, int(r.Window.Round(time.Second)/time.Second))
	}
	return b.String()
}

// ParseLease reads LeaseAnnotation's value.
func ParseLease(s string) ([]Rate, error) {
	var out []Rate
	for i, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 6 {
			return nil, fmt.Errorf("line %d: %d fields, want 6 (ip packets bytes packets/s bytes/s window)", i+1, len(f))
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		r := Rate{IP: ip}
		if r.Packets, err = strconv.ParseUint(f[1], 10, 64); err == nil {
			if r.Bytes, err = strconv.ParseUint(f[2], 10, 64); err == nil {
				if r.PacketsPerSecond, err = parseRate(f[3]); err == nil {
					if r.BytesPerSecond, err = parseRate(f[4]); err == nil {
						var w uint64
						w, err = strconv.ParseUint(f[5], 10, 32)
						r.Window = time.Duration(w) * time.Second
					}
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRate(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err == nil && (v < 0 || v != v || v > 1e18) {
		err = fmt.Errorf("rate %q out of range", s)
	}
	return v, err
}
