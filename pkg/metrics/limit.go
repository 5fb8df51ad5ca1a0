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
	// MaxConns is the most connections a server keeps open. Over it, a
	// newcomer replaces a connection of the source that holds the most,
	// or is closed at once (a cap that queues would let a flood delay the
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

// limitListener holds at most max connections, perSource of them from one
// remote address. When it is full, a newcomer takes the place of the
// oldest connection of the source holding the most, if that source holds
// more than the newcomer does: a flood spread over many addresses then
// pushes out its own connections, never the one or two of a kubelet
// probing health or a scraper, who always hold the fewest.
type limitListener struct {
	net.Listener
	max, perSource int

	mu    sync.Mutex
	total int
	bySrc map[netip.Addr][]*limitedConn // oldest first
	count int                           // connections judged
}

func newLimitListener(l net.Listener, max, perSource int) *limitListener {
	return &limitListener{Listener: l, max: max, perSource: perSource, bySrc: map[netip.Addr][]*limitedConn{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, src: remoteAddr(c)}
		ok, evict := l.admit(lc)
		if evict != nil {
			_ = evict.Close()
		}
		if !ok {
			_ = c.Close()
			continue
		}
		return lc, nil
	}
}

// admit counts c in if there is room, or room can be made by evicting the
// returned connection (which the caller closes).
func (l *limitListener) admit(c *limitedConn) (ok bool, evict *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	mine := len(l.bySrc[c.src])
	if mine >= l.perSource {
		return false, nil
	}
	if l.total >= l.max {
		var top netip.Addr
		most := 0
		for src, cs := range l.bySrc {
			if len(cs) > most {
				top, most = src, len(cs)
			}
		}
		if most <= mine {
			return false, nil
		}
		evict = l.bySrc[top][0]
		l.forget(evict)
	}
	l.total++
	l.bySrc[c.src] = append(l.bySrc[c.src], c)
	return true, evict
}

// forget uncounts c, once. Caller holds l.mu.
func (l *limitListener) forget(c *limitedConn) {
	if c.gone {
		return
	}
	c.gone = true
	l.total--
	cs := l.bySrc[c.src]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(l.bySrc, c.src)
	} else {
		l.bySrc[c.src] = cs
	}
}

// seen returns the number of connections judged so far.
func (l *limitListener) seen() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
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
	gone bool // uncounted; guarded by l.mu
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.forget(c)
	c.l.mu.Unlock()
	return err
}
