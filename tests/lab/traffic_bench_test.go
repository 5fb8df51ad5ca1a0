package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/counting"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/pkg/speaker"
	"github.com/microk8s-metallb/metallb/pkg/traffic"
)

// manyAddrs returns n lab addresses: half IPv4 (192.0.2.0/24,
// 198.51.100.0/24), half IPv6 (2001:db8:7::/64), 192.0.2.1 first.
func manyAddrs(n int) []netip.Addr {
	var out []netip.Addr
	for _, p := range []string{"192.0.2.%d", "198.51.100.%d"} {
		for i := 1; i < 255 && len(out) < n/2; i++ {
			out = append(out, netip.MustParseAddr(fmt.Sprintf(p, i)))
		}
	}
	a := netip.MustParseAddr("2001:db8:7::1")
	for len(out) < n {
		out = append(out, a)
		a = a.Next()
	}
	return out
}

// blast sends n UDP datagrams of 64 bytes to ip:9 from inside the
// namespace, where a socket is bound (excess is dropped at its buffer,
// after prerouting), and returns how long the sends took: over lo each
// packet's receive path, netfilter included, runs in the sending thread.
func blast(ns, ip string, n int) (time.Duration, error) {
	var took time.Duration
	err := In(strings.TrimPrefix(ns, Prefix+"-"), func() error {
		l, err := net.ListenPacket("udp", net.JoinHostPort(ip, "9"))
		if err != nil {
			return err
		}
		defer l.Close()
		c, err := net.Dial("udp", net.JoinHostPort(ip, "9"))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 64)
		start := time.Now()
		for range n {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		took = time.Since(start)
		return nil
	})
	return took, err
}

// BenchmarkTrafficCost measures the counting's costs in a namespace of its
// own, against the kernel's nf_tables: 1,000 addresses added in one batch
// and removed in one batch; a read of the 1,000 counts (netlink dump) and
// the speaker's read through the counting container's socket (what a
// scrape or a Lease renewal costs); and the per-packet cost, as the time
// to send the same UDP traffic over lo with the table (1,000 addresses,
// the destination among them) next to without it (the floor), 9 rounds
// each, interleaved.
func BenchmarkTrafficCost(b *testing.B) {
	ns, k := trafficNS(b, "192.0.2.1/32")
	ips := manyAddrs(1000)
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	var adds, removes, reads []time.Duration
	for range 5 {
		if _, err := k.Ensure(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := k.Apply(ips, nil); err != nil {
			b.Fatal(err)
		}
		adds = append(adds, time.Since(start))
		start = time.Now()
		counts, err := k.Read()
		if err != nil || len(counts) != len(ips) {
			b.Fatalf("read: %d counts, %v", len(counts), err)
		}
		reads = append(reads, time.Since(start))
		start = time.Now()
		if err := k.Apply(nil, ips); err != nil {
			b.Fatal(err)
		}
		removes = append(removes, time.Since(start))
	}

	// Through the socket, as the speaker reads: the counter in the
	// namespace, fed by the addresses file.
	dir := b.TempDir()
	if err := traffic.WriteAddresses(dir, ips); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- counting.NewCounter(counting.CounterOptions{Dir: dir, Kernel: k, Log: slog.New(slog.DiscardHandler), Keep: true}).Run(ctx)
	}()
	client := counting.NewClient(dir)
	var sockReads []time.Duration
	deadline := time.Now().Add(10 * time.Second)
	for len(sockReads) < 5 {
		start := time.Now()
		counts, err := client.Read(ctx)
		if err != nil || len(counts) != len(ips) {
			if time.Now().After(deadline) {
				b.Fatalf("the counter's socket: %d counts, %v", len(counts), err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		sockReads = append(sockReads, time.Since(start))
	}
	// A whole scrape of a speaker's /metrics with the 1,000 addresses
	// announced (one Service each): the collector reads the counts and
	// labels them; the registry encodes the text.
	announced := traffic.NewAnnounced()
	for i, ip := range ips {
		announced.Add(fmt.Sprintf("demo/svc-%d", i), "layer2", ip)
	}
	reg := metrics.New()
	reg.MustRegister(speaker.NewTrafficCollector(announced, client, "node-a", slog.New(slog.DiscardHandler)))
	h := reg.Handler()
	var scrapes []time.Duration
	var scrapeBytes int
	for range 5 {
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		scrapes = append(scrapes, time.Since(start))
		if n := strings.Count(rec.Body.String(), "\nmetallb_service_received_packets_total{"); n != len(ips) {
			b.Fatalf("the scrape holds %d packet series, want %d", n, len(ips))
		}
		scrapeBytes = rec.Body.Len()
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}

	const packets, rounds = 200000, 9
	var with, without []time.Duration
	for range rounds {
		if err := k.Delete(); err != nil {
			b.Fatal(err)
		}
		d, err := blast(ns, "192.0.2.1", packets)
		if err != nil {
			b.Fatal(err)
		}
		without = append(without, d)
		if _, err := k.Ensure(); err != nil {
			b.Fatal(err)
		}
		if err := k.Apply(ips, nil); err != nil {
			b.Fatal(err)
		}
		if d, err = blast(ns, "192.0.2.1", packets); err != nil {
			b.Fatal(err)
		}
		with = append(with, d)
		counts, _ := k.Read()
		if c := counts[netip.MustParseAddr("192.0.2.1")]; c.Packets != packets {
			b.Fatalf("counted %d of %d packets", c.Packets, packets)
		}
	}
	mw, mwo := median(with), median(without)
	perPkt := func(d time.Duration) string { return fmt.Sprintf("%.0f ns", float64(d.Nanoseconds())/packets) }
	b.Logf("1,000 addresses (500 IPv4, 500 IPv6), medians of 5: added in one batch %v, removed in one batch %v; read of the counts %v (netlink), %v through the socket (a scrape's or a Lease renewal's read)",
		median(adds).Round(10*time.Microsecond), median(removes).Round(10*time.Microsecond), median(reads).Round(10*time.Microsecond), median(sockReads).Round(10*time.Microsecond))
	b.Logf("a whole /metrics scrape with the 1,000 addresses (one Service each): %v, %d kB", median(scrapes).Round(10*time.Microsecond), scrapeBytes/1000)
	b.Logf("per packet (UDP 64 B over lo, %d packets, every one counted exactly; medians of %d interleaved rounds): %s with the table of 1,000, %s without (the floor): ratio %.3f",
		packets, rounds, perPkt(mw), perPkt(mwo), float64(mw)/float64(mwo))
	b.ReportMetric(median(adds).Seconds()*1000, "add1000-ms")
	b.ReportMetric(median(removes).Seconds()*1000, "remove1000-ms")
	b.ReportMetric(median(sockReads).Seconds()*1000, "read1000-ms")
	b.ReportMetric(median(scrapes).Seconds()*1000, "scrape1000-ms")
	b.ReportMetric(float64(mw)/float64(mwo), "per-packet-ratio")
}
