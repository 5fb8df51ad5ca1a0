package counting

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/traffic"
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func FuzzParseCounts(f *testing.F) {
	f.Add([]byte(`[{"ip":"192.0.2.1","packets":1,"bytes":60}]`))
	f.Add([]byte(`[{"ip":"x"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		counts, err := ParseCounts(b)
		if err != nil {
			return
		}
		for ip := range counts {
			if !ip.IsValid() {
				t.Fatalf("invalid address accepted from %q", b)
			}
		}
	})
}

// fakeKernel is a Kernel in memory; removed() makes Ensure find it gone.
type fakeKernel struct {
	mu      sync.Mutex
	built   bool
	held    map[netip.Addr]traffic.Count
	applies int
	deleted bool
}

func (k *fakeKernel) Ensure() (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.built {
		return false, nil
	}
	k.built, k.held = true, map[netip.Addr]traffic.Count{}
	return true, nil
}

func (k *fakeKernel) Apply(add, remove []netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.applies++
	for _, ip := range remove {
		delete(k.held, ip)
	}
	for _, ip := range add {
		k.held[ip] = traffic.Count{Packets: 1, Bytes: 100}
	}
	return nil
}

func (k *fakeKernel) Read() (map[netip.Addr]traffic.Count, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[netip.Addr]traffic.Count{}
	for ip, c := range k.held {
		out[ip] = c
	}
	return out, nil
}

func (k *fakeKernel) Delete() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.built, k.held, k.deleted = false, nil, true
	return nil
}

func (k *fakeKernel) removed() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.built, k.held = false, nil
}

func (k *fakeKernel) holds() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for ip := range k.held {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCounter(t *testing.T) {
	dir := t.TempDir()
	k := &fakeKernel{built: true, held: map[netip.Addr]traffic.Count{netip.MustParseAddr("192.0.2.9"): {Packets: 7, Bytes: 700}}}
	c := NewCounter(CounterOptions{Dir: dir, Kernel: k, Log: slog.New(slog.DiscardHandler), Poll: 5 * time.Millisecond, Check: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	client := NewClient(dir)
	eventually(t, "the socket serves", func() bool { _, err := client.Read(ctx); return err == nil })

	// Until the speaker writes, what a previous run left is kept.
	counts, err := client.Read(ctx)
	if err != nil || counts[netip.MustParseAddr("192.0.2.9")] != (traffic.Count{Packets: 7, Bytes: 700}) {
		t.Fatalf("before the file: %v, %v (want the held address kept with its count)", counts, err)
	}
	write := func(ips ...string) {
		t.Helper()
		if err := traffic.WriteAddresses(dir, addrs(ips...)); err != nil {
			t.Fatal(err)
		}
	}
	write("192.0.2.1", "2001:db8::1")
	eventually(t, "the file applied", func() bool { return slices.Equal(k.holds(), []string{"192.0.2.1", "2001:db8::1"}) })

	// Removed by someone: built again with every address.
	k.removed()
	eventually(t, "the table built again", func() bool { return slices.Equal(k.holds(), []string{"192.0.2.1", "2001:db8::1"}) })

	// A file that does not parse changes nothing.
	if err := os.WriteFile(filepath.Join(dir, traffic.AddressesFile), []byte("web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // 10 polls
	if got := k.holds(); !slices.Equal(got, []string{"192.0.2.1", "2001:db8::1"}) {
		t.Errorf("after a bad file: %v", got)
	}
	write("192.0.2.2")
	eventually(t, "the next good file applied", func() bool { return slices.Equal(k.holds(), []string{"192.0.2.2"}) })
	write()
	eventually(t, "an empty file empties the table", func() bool { return len(k.holds()) == 0 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !k.deleted {
		t.Error("the table was not deleted at the end")
	}
	if _, err := os.Stat(filepath.Join(dir, traffic.SocketFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is left: %v", err)
	}
}
