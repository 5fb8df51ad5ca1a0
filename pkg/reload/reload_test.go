package reload

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

const (
	good  = "address-pools:\n- {name: a, protocol: layer2, addresses: [192.0.2.0/28]}\n"
	good2 = "address-pools:\n- {name: b, protocol: layer2, addresses: [192.0.2.16/28]}\n"
	bad   = "address-pools: [{name: a}]\n"
)

// outcome is a Decision and the judge's state after it, summed up.
type outcome struct {
	Skipped             bool
	Accepted            string // the first pool's name
	Changed, ValidAgain bool
	Refused             string
	RefusedValid, Again bool
	Kept                string
	Missing, HadConfig  bool
	Text                string
	Stale               bool
	Reason              string
	Since               int // minutes after t0
	LogLevel            string
	Current             string
	Exists              bool
}

type step struct {
	name    string
	observe *Snapshot // else retry, else missing
	retry   bool
	refuse  error // what the gate's hook answers
	want    outcome
}

func run(t *testing.T, j *Judge, clock *time.Time, t0 time.Time, steps []step) {
	t.Helper()
	for i, s := range steps {
		*clock = t0.Add(time.Duration(i) * time.Minute)
		install := func(*config.Config) error { return s.refuse }
		var d Decision
		ok := true
		switch {
		case s.observe != nil:
			d, ok = j.Observe(*s.observe, install)
		case s.retry:
			d, ok = j.Retry(install)
		default:
			d = j.Missing()
		}
		got := outcome{Skipped: !ok, Exists: j.Exists()}
		if ok {
			got.Changed, got.ValidAgain, got.RefusedValid, got.Again, got.Kept = d.Changed, d.ValidAgain, d.RefusedValid, d.Again, d.Kept
			got.Missing, got.HadConfig = d.Missing, d.HadConfig
			got.Text, got.Stale, got.Reason, got.LogLevel = d.State.Text, d.State.Stale, d.State.Reason, d.State.LogLevel
			got.Since = int(d.State.Since.Sub(t0) / time.Minute)
			if d.Accepted != nil {
				got.Accepted = d.Accepted.Pools[0].Name
			}
			if d.Refused != nil {
				got.Refused = d.Refused.Error()
			}
		}
		if c := j.Current(); c != nil {
			got.Current = c.Pools[0].Name
		}
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Fatalf("step %d (%s) (-want +got):\n%s", i, s.name, diff)
		}
	}
}

func snap(version, text string) *Snapshot {
	return &Snapshot{Version: version, HasKey: true, Text: text}
}

const kept = "the last accepted configuration stays in force"

func TestGate(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	clock := t0
	j := NewGate(func() time.Time { return clock })
	parseErr := func() string {
		_, err := config.Parse([]byte(bad))
		return err.Error()
	}()
	moves := errors.New("it would move 3 addresses")
	run(t, j, &clock, t0, []step{
		{name: "no key, nothing before", observe: &Snapshot{Version: "1"},
			want: outcome{Refused: `the ConfigMap has no "config" key`, Kept: "no configuration has been accepted yet, so nothing is assigned or announced",
				Stale: true, Reason: `the ConfigMap has no "config" key`, Since: 0, Exists: true}},
		{name: "valid", observe: &Snapshot{Version: "2", HasKey: true, Text: good, LogLevel: "debug"},
			want: outcome{Accepted: "a", Changed: true, ValidAgain: true, Text: good, Since: 1, LogLevel: "debug", Current: "a", Exists: true}},
		{name: "the same version again", observe: snap("2", good),
			want: outcome{Skipped: true, Current: "a", Exists: true}},
		{name: "the same text at a new version", observe: snap("3", good),
			want: outcome{Accepted: "a", Text: good, Since: 1, Current: "a", Exists: true}},
		{name: "invalid: the last accepted stays", observe: snap("4", bad),
			want: outcome{Refused: parseErr, Kept: kept, Text: good, Stale: true, Reason: parseErr, Since: 4, Current: "a", Exists: true}},
		{name: "the same verdict again: said already, since unchanged", observe: snap("5", bad),
			want: outcome{Refused: parseErr, Again: true, Kept: kept, Text: good, Stale: true, Reason: parseErr, Since: 4, Current: "a", Exists: true}},
		{name: "an invalid config is not worth a retry", retry: true,
			want: outcome{Skipped: true, Current: "a", Exists: true}},
		{name: "valid, refused by the hook", observe: snap("6", good2), refuse: moves,
			want: outcome{Refused: moves.Error(), RefusedValid: true, Kept: kept, Text: good, Stale: true, Reason: moves.Error(), Since: 4, Current: "a", Exists: true}},
		{name: "retried, still refused: said already", retry: true, refuse: moves,
			want: outcome{Refused: moves.Error(), RefusedValid: true, Again: true, Kept: kept, Text: good, Stale: true, Reason: moves.Error(), Since: 4, Current: "a", Exists: true}},
		{name: "retried once the danger is gone", retry: true,
			want: outcome{Accepted: "b", Changed: true, ValidAgain: true, Text: good2, Since: 9, Current: "b", Exists: true}},
		{name: "deleted", want: outcome{Missing: true, HadConfig: true, Text: good2, Stale: true, Reason: MissingReason, Since: 10, Current: "b"}},
		{name: "nothing to retry once deleted", retry: true, want: outcome{Skipped: true, Current: "b"}},
		{name: "recreated", observe: snap("7", good2),
			want: outcome{Accepted: "b", ValidAgain: true, Text: good2, Since: 12, Current: "b", Exists: true}},
	})
}

func TestGateMissingBeforeAnyConfig(t *testing.T) {
	j := NewGate(time.Now)
	if d := j.Missing(); !d.Missing || d.HadConfig || d.State.Stale {
		t.Errorf("missing with nothing in force: %+v", d)
	}
	if err := j.Seed(good); err != nil {
		t.Fatal(err)
	}
	if j.Current() == nil || j.Stale() {
		t.Fatalf("seeded: current %v, stale %v", j.Current(), j.Stale())
	}
	if d := j.Missing(); !d.HadConfig || d.State.Text != good || d.State.Reason != MissingReason {
		t.Errorf("missing after the seed: %+v", d)
	}
	if err := j.Seed(bad); err == nil {
		t.Error("seeded an invalid config")
	}
}

// A mirror shows the stale state the controller published on the
// accepted copy, and its reason.
func TestMirror(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	clock := t0
	j := NewMirror(func() time.Time { return clock })
	refused := "configuration refused: it would move 3 addresses"
	run(t, j, &clock, t0, []step{
		{name: "accepted copy", observe: snap("1", good),
			want: outcome{Accepted: "a", Changed: true, Text: good, Since: 0, Current: "a", Exists: true}},
		{name: "the operator's edit was refused", observe: &Snapshot{Version: "2", HasKey: true, Text: good, MirroredStale: true, MirroredReason: refused},
			want: outcome{Accepted: "a", Text: good, Stale: true, Reason: refused, Since: 1, Current: "a", Exists: true}},
		{name: "accepted again", observe: snap("3", good2),
			want: outcome{Accepted: "b", Changed: true, ValidAgain: true, Text: good2, Since: 2, Current: "b", Exists: true}},
	})
}
