package metrics

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type fakeAuth map[string]int // token → status

func (f fakeAuth) Authorize(_ context.Context, token, path string) (int, string) {
	if code, ok := f[token]; ok {
		return code, "fake"
	}
	return http.StatusUnauthorized, "unknown token"
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a self-signed test server
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSecureMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := New()
	r.SetReady(true)
	m, h := freeAddr(t), freeAddr(t)
	if err := r.ServeWith(ctx, ServeOptions{MetricsAddr: m, HealthAddr: h, Auth: fakeAuth{"good": 200, "weak": 403}},
		slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	type res struct {
		Code    int
		Metrics bool
	}
	got := map[string]res{}
	for name, c := range map[string]struct{ url, token string }{
		"no token":            {"https://" + m + "/metrics", ""},
		"unknown token":       {"https://" + m + "/metrics", "nope"},
		"token without right": {"https://" + m + "/metrics", "weak"},
		"allowed token":       {"https://" + m + "/metrics", "good"},
		"health on metrics":   {"https://" + m + "/readyz", "good"},
		"plain http":          {"http://" + m + "/metrics", "good"},
		"readyz":              {"http://" + h + "/readyz", ""},
		"healthz":             {"http://" + h + "/healthz", ""},
		"metrics on health":   {"http://" + h + "/metrics", ""},
	} {
		code, body := get(t, c.url, c.token)
		got[name] = res{code, strings.Contains(body, "go_goroutines")}
	}
	want := map[string]res{
		"no token":            {401, false},
		"unknown token":       {401, false},
		"token without right": {403, false},
		"allowed token":       {200, true},
		"health on metrics":   {404, false},
		"plain http":          {400, false}, // an HTTP request to the TLS port
		"readyz":              {200, false},
		"healthz":             {200, false},
		"metrics on health":   {404, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestConnectionCaps: one source keeps at most MaxConnsPerSource
// connections; the next are closed at once, and closing one frees a place.
func TestConnectionCaps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(ln, 8, 3)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// The refused ones see EOF; the kept ones a read deadline.
	var kept, refused int
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			kept++
		} else {
			refused++
		}
	}
	if kept != 3 || refused != 2 || l.open() != 3 {
		t.Fatalf("kept %d, refused %d, open %d; want 3, 2, 3", kept, refused, l.open())
	}
	conns[0].Close()
	deadline := time.Now().Add(2 * time.Second)
	for l.open() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, c)
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err == nil || !err.(net.Error).Timeout() {
		t.Fatalf("a connection after one closed: %v, want it kept", err)
	}
}

// TestFullListenerMakesRoom: when every place is taken, a newcomer from a
// source holding fewer connections than the biggest holder takes the place
// of that holder's oldest; a newcomer holding as many as anyone is closed.
func TestFullListenerMakesRoom(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(ln, 4, 3)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func(src string) int {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		deadline := time.Now().Add(2 * time.Second)
		for l.seen() < len(conns) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // until the listener has judged it
		}
		return len(conns) - 1
	}
	open := func() []int {
		var out []int
		for i, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := c.Read(make([]byte, 1))
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				out = append(out, i)
			}
		}
		return out
	}
	for range 3 {
		dial("127.0.0.2") // 0, 1, 2: the flood's first address
	}
	dial("127.0.0.3") // 3: full now
	dial("127.0.0.4") // 4: replaces 0 (127.0.0.2 holds the most)
	dial("127.0.0.3") // 5: replaces 1 (127.0.0.2 still holds 2 > 1)
	dial("127.0.0.5") // 6: 127.0.0.3 holds 2 now: replaces 3
	dial("127.0.0.4") // 7: everyone holds 1: closed
	if diff := cmp.Diff([]int{2, 4, 5, 6}, open()); diff != "" {
		t.Errorf("connections still open (-want +got):\n%s", diff)
	}
	if l.open() != 4 {
		t.Errorf("open %d, want 4", l.open())
	}
}
