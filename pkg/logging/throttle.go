package logging

import (
	"sync"
	"time"
)

// Throttle lets one log line per key through each interval and counts the
// others, so a flood of bad packets (undecryptable, forged, conflicting)
// cannot fill a node's logs. Keys are a fixed set chosen by the caller
// (a kind of problem), never text from a packet, so the map stays small.
// The zero value is not usable: build it with NewThrottle.
type Throttle struct {
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

const maxKeys = 1024

// NewThrottle lets one line per key through every interval; now is the
// clock (nil: time.Now).
func NewThrottle(every time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{every: every, now: now, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// Allow says whether a line for key may be logged now and, when it may,
// how many were held back since the last one (to log with it).
func (t *Throttle) Allow(key string) (ok bool, suppressed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if _, seen := t.last[key]; !seen && len(t.last) >= maxKeys {
		key = "\x00others"
	}
	if last, seen := t.last[key]; seen && now.Sub(last) < t.every {
		t.suppressed[key]++
		return false, 0
	}
	t.last[key] = now
	n := t.suppressed[key]
	delete(t.suppressed, key)
	return true, n
}
