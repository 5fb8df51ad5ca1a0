package controller

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

type ctrlMetrics struct {
	addrTotal    *prometheus.GaugeVec
	addrInUse    *prometheus.GaugeVec
	failures     *prometheus.CounterVec
	statusWrites prometheus.Counter
	latency      prometheus.Histogram
	assigned     *prometheus.GaugeVec

	mu    sync.Mutex
	shown map[string][]string // Service key → label values set in assigned
}

func newMetrics(reg *metrics.Registry) *ctrlMetrics {
	m := &ctrlMetrics{
		shown: map[string][]string{},
		addrTotal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "allocator", Name: "addresses_total",
			Help: "Number of usable IP addresses, per pool.",
		}, []string{"pool"}),
		addrInUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "allocator", Name: "addresses_in_use_total",
			Help: "Number of IP addresses in use, per pool.",
		}, []string{"pool"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "allocator", Name: "allocation_failures_total",
			Help: "Failed allocations by reason.",
		}, []string{"reason"}),
		statusWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "controller", Name: "status_writes_total",
			Help: "Service status writes.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "controller", Name: "assignment_duration_seconds",
			Help:    "Time from picking a Service off the queue to its status written.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		assigned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "allocator", Name: "assigned",
			Help: "1 for each address assigned to a Service (compare with metallb_speaker_announced).",
		}, []string{"service", "ip", "pool"}),
	}
	if reg != nil {
		reg.MustRegister(m.addrTotal, m.addrInUse, m.failures, m.statusWrites, m.latency, m.assigned)
	}
	return m
}

// updatePoolMetrics refreshes the per-pool gauges. Caller holds c.mu.
func (c *Controller) updatePoolMetrics() {
	c.m.addrTotal.Reset()
	c.m.addrInUse.Reset()
	for _, p := range c.alloc.Pools() {
		size, inUse, _ := c.alloc.Usage(p)
		c.m.addrTotal.WithLabelValues(p).Set(size)
		c.m.addrInUse.WithLabelValues(p).Set(float64(inUse))
	}
	if c.status == nil || c.inForce == nil {
		return
	}
	pools := map[string]k8s.PoolStatus{}
	for _, p := range c.inForce.Pools {
		if u, ok := c.alloc.UsageByFamily(p.Name); ok && p.Resource {
			pools[p.Name] = k8s.PoolStatus{AssignedIPv4: u.AssignedIPv4, AssignedIPv6: u.AssignedIPv6, AvailableIPv4: u.AvailableIPv4, AvailableIPv6: u.AvailableIPv6}
		}
	}
	c.status.SetPools(pools)
}

// setAssigned makes metallb_allocator_assigned show ips (of pool) for key,
// and nothing else for it; unchanged, it costs a map lookup.
func (m *ctrlMetrics) setAssigned(key, pool string, ips []netip.Addr) {
	want := make([]string, 0, len(ips)+1)
	for _, ip := range ips {
		want = append(want, ip.String())
	}
	want = append(want, pool)
	m.mu.Lock()
	defer m.mu.Unlock()
	old, had := m.shown[key]
	if had && slices.Equal(old, want) {
		return
	}
	if had {
		for _, ip := range old[:len(old)-1] {
			m.assigned.DeleteLabelValues(key, ip, old[len(old)-1])
		}
	}
	if len(ips) == 0 {
		delete(m.shown, key)
		return
	}
	for _, ip := range want[:len(want)-1] {
		m.assigned.WithLabelValues(key, ip, pool).Set(1)
	}
	m.shown[key] = want
}
