package members

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log sink several goroutines write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// A speaker whose process is gone while its host lives: the host refuses
// the fallback ping, and the others mark it dead on that evidence, before
// the suspicion would have run out; a rejoin's resync does not bring it
// back; a new start of it is alive again.
func TestRefusedFallbackPingIsDeath(t *testing.T) {
	port := freePort(t)
	key := Key("s3cret")
	var logA, logC lockedBuffer
	ra, rb, rc := newRecorder(), newRecorder(), newRecorder()
	a := startLogging(t, "a", "127.0.0.1", port, key, ra, slog.New(slog.NewTextHandler(&logA, nil)))
	defer a.Shutdown()
	b := start(t, "b", "127.0.0.2", port, key, rb)
	c := startLogging(t, "c", "127.0.0.3", port, key, rc, slog.New(slog.NewTextHandler(&logC, nil)))
	defer c.Shutdown()
	all := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	c.Join(all)
	eventually(t, "a sees b and c", func() bool { return a.Alive("b") && a.Alive("c") })

	var took []time.Duration
	refused := 0
	for round := range 5 {
		b.Shutdown() // its sockets close: the host's kernel refuses TCP to its port
		killed := time.Now()
		eventually(t, "a and c see b dead", func() bool { return !a.Alive("b") && !c.Alive("b") })
		took = append(took, time.Since(killed))
		// Each says b died once this round, and the death is the refusal's:
		// at least one of them saw it (its own fallback ping, or its own
		// dial on the other's hint); the other may learn it first from the
		// first one's dead message.
		for name, log := range map[string]*lockedBuffer{"a": &logA, "c": &logC} {
			if got := strings.Count(log.String(), `msg="speaker dead`); got != round+1 {
				t.Fatalf("round %d: %s's log has %d deaths of b, want %d:\n%s", round, name, got, round+1, log.String())
			}
		}
		if got := strings.Count(logA.String()+logC.String(), "refused the connection"); got <= refused {
			t.Fatalf("round %d: b's death was not seen as a refusal by a or c:\n%s\n%s", round, logA.String(), logC.String())
		} else {
			refused = got
		}
		// A rejoin (the speaker's periodic one) while memberlist may still
		// hold b suspect: b stays dead.
		a.Join(all)
		if a.Alive("b") {
			t.Fatalf("round %d: a rejoin brought the dead b back", round)
		}
		b = start(t, "b", "127.0.0.2", port, key, rb)
		b.Join(all)
		eventually(t, "a sees the new b alive", func() bool { return a.Alive("b") })
	}
	hinted := strings.Count(logA.String()+logC.String(), "on a peer's word")
	b.Shutdown()
	t.Logf("dead process seen dead by a and c after %v (suspicion alone: %v after the failed probe); %d of %d deaths confirmed on a hint", took, SuspicionMult*ProbeInterval, hinted, 2*len(took))
}

// A check hint about a live speaker, or an address no peer has, changes
// nothing: the receiver's own dial decides.
func TestCheckHintAboutALiveSpeaker(t *testing.T) {
	port := freePort(t)
	key := Key("s3cret")
	a := start(t, "a", "127.0.0.1", port, key, newRecorder())
	defer a.Shutdown()
	b := start(t, "b", "127.0.0.2", port, key, newRecorder())
	defer b.Shutdown()
	b.Join([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	eventually(t, "a sees b", func() bool { return a.Alive("b") })
	a.dialCheck("b", net.JoinHostPort("127.0.0.2", strconv.Itoa(port))) // what a hint about b does
	if !a.Alive("b") {
		t.Fatal("a hint about a live speaker made it dead")
	}
	a.checkHint(netip.MustParseAddr("127.0.0.9"))
	a.mu.Lock()
	dialled := len(a.checked)
	a.mu.Unlock()
	if dialled != 0 {
		t.Errorf("a hint naming no peer's address made a dial")
	}
}
