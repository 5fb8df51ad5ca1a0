package counting

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/microk8s-metallb/metallb/pkg/traffic"
)

// MaxCountsReply bounds a counts reply the client reads.
const MaxCountsReply = 16 << 20

// wireCount is one address's count on the socket.
type wireCount struct {
	IP string `json:"ip"`
	traffic.Count
}

func encodeCounts(counts map[netip.Addr]traffic.Count) []wireCount {
	out := make([]wireCount, 0, len(counts))
	for ip, c := range counts {
		out = append(out, wireCount{IP: ip.String(), Count: c})
	}
	slices.SortFunc(out, func(a, b wireCount) int { return strings.Compare(a.IP, b.IP) })
	return out
}

// ParseCounts reads a counts reply: a JSON array of {ip, packets, bytes}.
func ParseCounts(b []byte) (map[netip.Addr]traffic.Count, error) {
	var wire []wireCount
	if err := json.Unmarshal(b, &wire); err != nil {
		return nil, fmt.Errorf("counts reply: %w", err)
	}
	out := make(map[netip.Addr]traffic.Count, len(wire))
	for _, w := range wire {
		ip, err := netip.ParseAddr(w.IP)
		if err != nil {
			return nil, fmt.Errorf("counts reply: %w", err)
		}
		out[ip] = w.Count
	}
	return out, nil
}

// Client reads the counts from the counting container's socket.
type Client struct {
	http *http.Client
}

// NewClient returns a Client of the socket in dir.
func NewClient(dir string) *Client {
	sock := filepath.Join(dir, traffic.SocketFile)
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConns: 1,
	}}}
}

// Read returns the count of every address the table holds.
func (c *Client) Read(ctx context.Context) (map[netip.Addr]traffic.Count, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://traffic/counters", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the traffic counts (is the traffic container running?): %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxCountsReply))
	if err != nil {
		return nil, fmt.Errorf("read the traffic counts: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read the traffic counts: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return ParseCounts(b)
}
