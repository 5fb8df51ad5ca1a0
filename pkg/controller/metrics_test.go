package controller

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

func TestAssignedMetricFollowsAssignments(t *testing.T) {
	m := newMetrics(metrics.New())
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	m.setAssigned("demo/web", "lan", []netip.Addr{ip("192.0.2.10")})
	m.setAssigned("demo/web", "lan", []netip.Addr{ip("192.0.2.10")}) // unchanged
	m.setAssigned("demo/dual", "both", []netip.Addr{ip("192.0.2.11"), ip("2001:db8::1")})
	m.setAssigned("demo/web", "lan", []netip.Addr{ip("192.0.2.12")}) // moved
	m.setAssigned("demo/dual", "", nil)                              // released
	want := `
# HELP metallb_allocator_assigned 1 for each address assigned to a Service (compare with metallb_speaker_announced).
# TYPE metallb_allocator_assigned gauge
metallb_allocator_assigned{ip="192.0.2.12",pool="lan",service="demo/web"} 1
`
	if err := testutil.CollectAndCompare(m.assigned, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
