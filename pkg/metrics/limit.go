package metrics

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limits on every server of this package. Anyone who reaches a port (any
// pod, and for the host-network speaker anyone on the LAN) may connect, so
// no caller may hold more than a few connections, the total is bounded, and
// a connection that sends nothing is closed.
const (
	// MaxConns is the most connections a server keeps open; the next are
	// closed at once (a cap that queues them would let a flood delay the
	// kubelet's probes instead).
	MaxConns = 256
	// MaxConnsPerSource is the most one remote address may keep open: a
	// scraper or a kubelet needs one or two.
	MaxConnsPerSource = 16

	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 30 * time.Second
)

// limitListener closes connections over its caps as soon as they are
// accepted.
type limitListener struct {
	net.Listener
	max, perSource int

	mu    sync.Mutex
	total int
	bySrc map[netip.Addr]int
}

func newLimitListener(l net.Listener, max, perSource int) *limitListener {
	return &limitListener{Listener: l, max: max, perSource: perSource, bySrc: map[netip.Addr]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := remoteAddr(c)
		l.mu.Lock()
		ok := l.total < l.max && l.bySrc[src] < l.perSource
		if ok {
			l.total++
			l.bySrc[src]++
		}
		l.mu.Unlock()
		if !ok {
			_ = c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: l, src: src}, nil
	}
}

func (l *limitListener) release(src netip.Addr) {
	l.mu.Lock()
	l.total--
	if l.bySrc[src]--; l.bySrc[src] <= 0 {
		delete(l.bySrc, src)
	}
	l.mu.Unlock()
}

// open returns the number of connections held.
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

type limitedConn struct {
	net.Conn
	l    *limitListener
	src  netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}
