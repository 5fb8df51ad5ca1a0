package speaker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microk8s-metallb/metallb/pkg/layer2"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// speakerMetrics are the speaker's own metrics (the announcers and the
// config watcher have theirs).
type speakerMetrics struct {
	announced *prometheus.GaugeVec
	l2        map[string]*prometheus.CounterVec // by layer2 event
	conflicts *prometheus.CounterVec
	members   prometheus.Gauge
}

func newMetrics() *speakerMetrics {
	return &speakerMetrics{
		announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "speaker", Name: "announced",
			Help: "1 for each address this speaker announces.",
		}, []string{"service", "node", "ip", "protocol"}),
		// Per address: the requests for an address are the traffic signal
		// layer2 gives per Service (each client asks before it connects).
		l2: map[string]*prometheus.CounterVec{
			layer2.EventRequest: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metrics.Namespace, Subsystem: "layer2", Name: "requests_received",
				Help: "ARP requests and Neighbor Solicitations received for announced addresses.",
			}, []string{"ip"}),
			layer2.EventResponse: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metrics.Namespace, Subsystem: "layer2", Name: "responses_sent",
				Help: "ARP replies and Neighbor Advertisements sent.",
			}, []string{"ip"}),
			layer2.EventGratuitous: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metrics.Namespace, Subsystem: "layer2", Name: "gratuitous_sent",
				Help: "Gratuitous ARPs and unsolicited Neighbor Advertisements sent (a burst follows each takeover).",
			}, []string{"ip"}),
		},
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "layer2", Name: "conflicts_total",
			Help: "Other MACs seen answering for or announcing an address we announce.",
		}, []string{"ip"}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "speaker", Name: "members",
			Help: "Speakers this one sees alive (itself included), by memberlist.",
		}),
	}
}

func (m *speakerMetrics) register(r *metrics.Registry) {
	r.MustRegister(m.announced, m.conflicts, m.members)
	for _, c := range m.l2 {
		r.MustRegister(c)
	}
}
