package controller

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

type ctrlMetrics struct {
	addrTotal    *prometheus.GaugeVec
	addrInUse    *prometheus.GaugeVec
	failures     *prometheus.CounterVec
	statusWrites prometheus.Counter
	latency      prometheus.Histogram
}

func newMetrics(reg *metrics.Registry) *ctrlMetrics {
	m := &ctrlMetrics{
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
	}
	if reg != nil {
		reg.MustRegister(m.addrTotal, m.addrInUse, m.failures, m.statusWrites, m.latency)
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
}
