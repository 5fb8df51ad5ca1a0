package bgp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microk8s-metallb/metallb/pkg/bfd"
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

// BFDCollector returns the BFD sessions' metrics, under MetalLB's names:
// metallb_bfd_session_up, metallb_bfd_control_packet_input and _output,
// metallb_bfd_session_up_events and _down_events, each labelled with the
// peer; and metallb_bfd_packets_dropped_total by reason (a TTL other than
// 255: sent from beyond the link; malformed).
func (m *Manager) BFDCollector() prometheus.Collector { return bfdCollector{m} }

type bfdCollector struct{ m *Manager }

var (
	descBFDUp = prometheus.NewDesc(metrics.Namespace+"_bfd_session_up",
		"1 when the BFD session with the peer is Up.", []string{"peer"}, nil)
	descBFDIn = prometheus.NewDesc(metrics.Namespace+"_bfd_control_packet_input",
		"BFD Control packets received from the peer.", []string{"peer"}, nil)
	descBFDOut = prometheus.NewDesc(metrics.Namespace+"_bfd_control_packet_output",
		"BFD Control packets sent to the peer.", []string{"peer"}, nil)
	descBFDUpEvents = prometheus.NewDesc(metrics.Namespace+"_bfd_session_up_events",
		"Times the BFD session with the peer came Up.", []string{"peer"}, nil)
	descBFDDownEvents = prometheus.NewDesc(metrics.Namespace+"_bfd_session_down_events",
		"Times the BFD session with the peer left Up (each closed its BGP session).", []string{"peer"}, nil)
	descBFDDropped = prometheus.NewDesc(metrics.Namespace+"_bfd_packets_dropped_total",
		"BFD packets dropped before any session saw them: reason ttl (not 255, so not from the link: forged) or malformed.", []string{"reason"}, nil)
)

func (c bfdCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBFDUp, descBFDIn, descBFDOut, descBFDUpEvents, descBFDDownEvents, descBFDDropped} {
		ch <- d
	}
}

func (c bfdCollector) Collect(ch chan<- prometheus.Metric) {
	sessions, ttl, malformed, running := c.m.bfdStats()
	for _, st := range sessions {
		peer := st.Peer.String()
		up := 0.0
		if st.State == bfd.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descBFDUp, prometheus.GaugeValue, up, peer)
		ch <- prometheus.MustNewConstMetric(descBFDIn, prometheus.CounterValue, float64(st.ControlIn), peer)
		ch <- prometheus.MustNewConstMetric(descBFDOut, prometheus.CounterValue, float64(st.ControlOut), peer)
		ch <- prometheus.MustNewConstMetric(descBFDUpEvents, prometheus.CounterValue, float64(st.UpEvents), peer)
		ch <- prometheus.MustNewConstMetric(descBFDDownEvents, prometheus.CounterValue, float64(st.DownEvents), peer)
	}
	if running {
		ch <- prometheus.MustNewConstMetric(descBFDDropped, prometheus.CounterValue, float64(ttl), "ttl")
		ch <- prometheus.MustNewConstMetric(descBFDDropped, prometheus.CounterValue, float64(malformed), "malformed")
	}
}
