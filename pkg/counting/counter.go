package counting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/traffic"
)

// Kernel is where the counting happens (NFT on Linux; a fake in tests).
type Kernel interface {
	// Ensure checks that the table, its chain, rules and sets are all
	// there and builds whatever is missing; fresh reports that it built
	// the sets anew, empty (at the first start, or after someone removed
	// the table).
	Ensure() (fresh bool, err error)
	// Apply adds and removes addresses in one atomic batch.
	Apply(add, remove []netip.Addr) error
	// Read returns the count of every address the sets hold.
	Read() (map[netip.Addr]traffic.Count, error)
	// Delete removes the table.
	Delete() error
}

// CounterOptions configure a Counter.
type CounterOptions struct {
	Dir    string // shared with the speaker: traffic.AddressesFile in, traffic.SocketFile out
	Kernel Kernel
	Log    *slog.Logger
	// Poll is how often the addresses file is looked at (default 200 ms):
	// a stat, and a read only when it changed.
	Poll time.Duration
	// Check is how often the table is checked (default 1 s): a table
	// someone removed is built again, with every address.
	Check time.Duration
	// Keep leaves the table in place when Run returns (default: deleted,
	// so that turning the counting off leaves nothing behind).
	Keep bool
}

// Counter keeps the kernel's table in step with the addresses file and
// serves the counts. One goroutine, Run's loop, owns the table; the
// socket's handler asks it.
type Counter struct {
	o     CounterOptions
	have  map[netip.Addr]bool // in the kernel's sets
	want  []netip.Addr        // from the file; nil until it was read once
	stamp fileStamp
	reads chan chan readReply
}

type readReply struct {
	counts map[netip.Addr]traffic.Count
	err    error
}

type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// NewCounter returns a Counter; Run starts it.
func NewCounter(o CounterOptions) *Counter {
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.Check <= 0 {
		o.Check = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Counter{o: o, have: map[netip.Addr]bool{}, reads: make(chan chan readReply)}
}

// Run builds the table, serves the socket and follows the file until ctx
// ends; then it deletes the table (unless Keep) and the socket.
func (c *Counter) Run(ctx context.Context) error {
	if err := c.start(); err != nil {
		return err
	}
	sock := filepath.Join(c.o.Dir, traffic.SocketFile)
	_ = os.Remove(sock) // a previous run's
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	srv := &http.Server{Handler: c.handler(ctx), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
		_ = os.Remove(sock)
		if !c.o.Keep {
			if err := c.o.Kernel.Delete(); err != nil {
				c.o.Log.Warn("cannot delete the traffic table", "error", err)
			}
		}
	}()
	c.o.Log.Info("counting traffic to the announced addresses", "dir", c.o.Dir, "held", len(c.have))
	poll, check := time.NewTicker(c.o.Poll), time.NewTicker(c.o.Check)
	defer poll.Stop()
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			c.follow()
		case <-check.C:
			c.ensure()
		case reply := <-c.reads:
			counts, err := c.o.Kernel.Read()
			reply <- readReply{counts, err}
		}
	}
}

// start builds the table, or adopts what a previous run left in it (a
// restarted container keeps its counts), then applies the file.
func (c *Counter) start() error {
	fresh, err := c.o.Kernel.Ensure()
	if err != nil {
		return fmt.Errorf("build the traffic table: %w", err)
	}
	if !fresh {
		held, err := c.o.Kernel.Read()
		if err != nil {
			return fmt.Errorf("read the traffic table: %w", err)
		}
		for ip := range held {
			c.have[ip] = true
		}
	}
	c.follow()
	return nil
}

// follow reads the file when it changed and applies it.
func (c *Counter) follow() {
	p := filepath.Join(c.o.Dir, traffic.AddressesFile)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return // the speaker has not planned yet: keep what is held
	}
	if err != nil {
		c.o.Log.Warn("cannot read the announced addresses", "error", err)
		return
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}
	if st == c.stamp && c.want != nil {
		return
	}
	b, err := readBounded(p)
	var want []netip.Addr
	if err == nil {
		want, err = traffic.ParseAddresses(b)
	}
	if err != nil {
		c.o.Log.Error("cannot use the announced addresses; keeping the table as it is", "error", err)
		c.stamp = st // not again until it changes
		return
	}
	c.stamp, c.want = st, want
	if c.want == nil {
		c.want = []netip.Addr{}
	}
	c.apply()
}

// ensure re-creates a table someone removed, with every address.
func (c *Counter) ensure() {
	fresh, err := c.o.Kernel.Ensure()
	if err != nil {
		c.o.Log.Error("cannot check the traffic table", "error", err)
		return
	}
	if fresh {
		c.o.Log.Warn("the traffic table was removed or changed by someone else: built again (its counts start from 0)")
		c.have = map[netip.Addr]bool{}
		c.apply()
	}
}

func (c *Counter) apply() {
	if c.want == nil {
		return
	}
	add, remove := traffic.Diff(c.have, c.want)
	if len(add) == 0 && len(remove) == 0 {
		return
	}
	if err := c.o.Kernel.Apply(add, remove); err != nil {
		c.o.Log.Error("cannot update the traffic table", "add", len(add), "remove", len(remove), "error", err)
		return
	}
	for _, ip := range add {
		c.have[ip] = true
	}
	for _, ip := range remove {
		delete(c.have, ip)
	}
	c.o.Log.Debug("traffic table updated", "added", len(add), "removed", len(remove), "held", len(c.have))
}

func (c *Counter) handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counters", func(w http.ResponseWriter, r *http.Request) {
		reply := make(chan readReply, 1)
		select {
		case c.reads <- reply:
		case <-ctx.Done():
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			return
		}
		rr := <-reply
		if rr.err != nil {
			http.Error(w, rr.err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(encodeCounts(rr.counts))
	})
	return mux
}

func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, traffic.MaxAddressesFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > traffic.MaxAddressesFile {
		return nil, fmt.Errorf("%w: more than %d bytes", traffic.ErrTooLarge, traffic.MaxAddressesFile)
	}
	return b, nil
}

// inode tells a replaced file from the same one rewritten within the
// file system's time resolution.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
