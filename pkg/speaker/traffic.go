package speaker

// Traffic per Service: the counting container counts, the speaker tells
// it what to count and turns the counts into metrics and into its Lease.

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microk8s-metallb/metallb/pkg/counting"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/pkg/traffic"
)

// trafficWriteEvery coalesces the addresses file's writes: a bulk of
// changes is one write, and counting starts at most this late.
const trafficWriteEvery = 50 * time.Millisecond

// trafficReadTimeout bounds a read of the counts (a scrape, a Lease write).
const trafficReadTimeout = 2 * time.Second

// trafficCounts is the speaker's side of the counting: what this node
// announces (fed by the loop), the counts' client, the collector of
// metallb_service_received_{packets,bytes}_total, and the Lease's sampler.
type trafficCounts struct {
	*TrafficCollector
	sampler traffic.Sampler // the Lease goroutine's
	lastErr string          // the Lease goroutine's: each error logged once
}

func newTrafficCounts(dir, node string, log *slog.Logger) *trafficCounts {
	return &trafficCounts{TrafficCollector: NewTrafficCollector(traffic.NewAnnounced(), counting.NewClient(dir), node, log)}
}

// TrafficCollector is the prometheus.Collector of the traffic per
// Service: at each scrape it reads the counts and labels those of the
// addresses announced with their Services.
type TrafficCollector struct {
	announced *traffic.Announced
	client    *counting.Client
	node      string
	log       *slog.Logger

	packets, bytes, up *prometheus.Desc
}

// NewTrafficCollector returns the collector of what a node announces,
// reading the counts through client.
func NewTrafficCollector(announced *traffic.Announced, client *counting.Client, node string, log *slog.Logger) *TrafficCollector {
	labels := []string{"namespace", "service", "ip", "node"}
	return &TrafficCollector{
		announced: announced, client: client, node: node, log: log,
		packets: prometheus.NewDesc(metrics.Namespace+"_service_received_packets_total",
			"Packets this node received for the address of a Service it announces, counted by the kernel before kube-proxy's DNAT (services sharing an address show the same counts).", labels, nil),
		bytes: prometheus.NewDesc(metrics.Namespace+"_service_received_bytes_total",
			"Bytes (whole IP packets) this node received for the address of a Service it announces, counted by the kernel before kube-proxy's DNAT.", labels, nil),
		up: prometheus.NewDesc(metrics.Namespace+"_traffic_counter_up",
			"1 when the speaker could read the counts from the counting container (enable --traffic-stats), 0 when not.", []string{"node"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (t *TrafficCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- t.packets
	ch <- t.bytes
	ch <- t.up
}

// Collect implements prometheus.Collector: the counts, read now.
func (t *TrafficCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), trafficReadTimeout)
	defer cancel()
	counts, err := t.client.Read(ctx)
	if err != nil {
		t.log.Debug("cannot read the traffic counts", "error", err)
		ch <- prometheus.MustNewConstMetric(t.up, prometheus.GaugeValue, 0, t.node)
		return
	}
	ch <- prometheus.MustNewConstMetric(t.up, prometheus.GaugeValue, 1, t.node)
	for ip, svcs := range t.announced.Services() {
		c, ok := counts[ip]
		if !ok {
			continue // not in the table yet
		}
		for _, svc := range svcs {
			ns, name, _ := strings.Cut(svc, "/")
			ch <- prometheus.MustNewConstMetric(t.packets, prometheus.CounterValue, float64(c.Packets), ns, name, ip.String(), t.node)
			ch <- prometheus.MustNewConstMetric(t.bytes, prometheus.CounterValue, float64(c.Bytes), ns, name, ip.String(), t.node)
		}
	}
}

// publish puts this node's traffic on its Lease (traffic.LeaseAnnotation),
// at the Lease's own writes only. Called from the Lease's goroutine.
func (t *trafficCounts) publish(l *coordinationv1.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), trafficReadTimeout)
	defer cancel()
	counts, err := t.client.Read(ctx)
	if err != nil {
		if msg := err.Error(); msg != t.lastErr {
			t.log.Warn("cannot read the traffic counts: the Lease shows none", "error", err)
			t.lastErr = msg
		}
		delete(l.Annotations, traffic.LeaseAnnotation)
		return
	}
	t.lastErr = ""
	announced := t.announced.Services()
	mine := make(map[netip.Addr]traffic.Count, len(announced))
	for ip := range announced {
		if c, ok := counts[ip]; ok {
			mine[ip] = c
		}
	}
	v := traffic.FormatLease(t.sampler.Add(time.Now(), mine))
	if v == "" {
		delete(l.Annotations, traffic.LeaseAnnotation)
		return
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[traffic.LeaseAnnotation] = v
}
