package bgp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// Collector returns Prometheus metrics read from the running sessions:
// metallb_bgp_session_up, metallb_bgp_announced_prefixes_total,
// metallb_bgp_updates_total, metallb_bgp_received_prefixes_refused_total,
// each labelled with the peer.
func (s *Stub) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Stub }

var (
	descUp = prometheus.NewDesc(metrics.Namespace+"_bgp_session_up",
		"1 when the BGP session with the peer is established.", []string{"peer"}, nil)
	descPrefixes = prometheus.NewDesc(metrics.Namespace+"_bgp_announced_prefixes_total",
		"Prefixes currently advertised to the peer.", []string{"peer"}, nil)
	descUpdates = prometheus.NewDesc(metrics.Namespace+"_bgp_updates_total",
		"BGP UPDATE messages sent to the peer.", []string{"peer"}, nil)
	descRefused = prometheus.NewDesc(metrics.Namespace+"_bgp_received_prefixes_refused_total",
		"Prefixes the peer announced to this speaker: every one is refused (never stored, used or passed on).", []string{"peer"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUp
	ch <- descPrefixes
	ch <- descUpdates
	ch <- descRefused
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, ps := range c.s.sessions() {
		addr := ps.p.Address.String()
		up := 0.0
		if ps.up.Load() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, addr)
		ch <- prometheus.MustNewConstMetric(descPrefixes, prometheus.GaugeValue, float64(ps.advertised.Load()), addr)
		ch <- prometheus.MustNewConstMetric(descUpdates, prometheus.CounterValue, float64(ps.updates.Load()), addr)
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(ps.refused.Load()), addr)
	}
}
