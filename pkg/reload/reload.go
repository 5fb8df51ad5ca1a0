// Package reload decides what an edit of the configuration does, without
// any Kubernetes: given what the source holds now (a Snapshot), a Judge
// says whether a new config goes in force or is refused, and the state to
// publish. The last accepted config stays in force through every refusal,
// a deletion and a restart (Seed).
//
// Two roles, two constructors. NewGate is the controller's: the operator's
// ConfigMap, judged by a hook that may refuse a valid config (one that
// would take addresses from Services); a refused valid config is worth
// judging again (Retry) once what made it dangerous is gone. NewMirror is
// the speakers': the controller's accepted copy, always valid, whose stale
// state the speakers show as their own.
//
// A Judge is not safe for concurrent use: its owner serialises the calls.
package reload

import (
	"fmt"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// Snapshot is what the source holds at one version.
type Snapshot struct {
	Version string // the resourceVersion; "" always judged
	HasKey  bool   // the config key is present
	Text    string
	// What the controller published on its accepted copy (read by a
	// mirror only): the operator's ConfigMap was refused, and why.
	MirroredStale  bool
	MirroredReason string
	LogLevel       string // the operator's log-level annotation, passed on
	// Invalid, when set, is why the source cannot be read as a config
	// (it is refused with it, like a config that does not parse).
	Invalid error
}

// State is what to publish after a decision.
type State struct {
	Text     string // the config in force ("" when none was ever accepted)
	Stale    bool
	Reason   string
	Since    time.Time
	LogLevel string
}

// Decision is the outcome of one judgement, for the adapter to act on.
type Decision struct {
	// Accepted is the config newly in force (nil: refused, or missing).
	Accepted *config.Config
	// Changed: the accepted text differs from the one before (worth a log
	// line and the config's warnings).
	Changed bool
	// ValidAgain: a stale state ended with this acceptance (worth a
	// Normal Event).
	ValidAgain bool
	// Refused is why the config was not put in force; RefusedValid says it
	// parsed and the hook said no; Again that it is the same verdict as
	// the last one (said already: no new log line or Event).
	Refused      error
	RefusedValid bool
	Again        bool
	// Kept says what stays in force after a refusal.
	Kept string
	// Missing: the source is gone; HadConfig that a config stays in force
	// (else nothing is published).
	Missing   bool
	HadConfig bool
	State     State
}

// Judge holds the config in force and the verdict on the source.
type Judge struct {
	mirror bool
	now    func() time.Time

	current   *config.Config
	text      string
	stale     bool
	reason    string
	since     time.Time
	version   string
	refusedOK bool      // the refused config was valid: worth a Retry
	last      *Snapshot // the last seen, for Retry
	exists    bool
}

// NewGate is the controller's judge; now is the clock.
func NewGate(now func() time.Time) *Judge { return &Judge{now: now} }

// NewMirror is the speakers' judge of the accepted copy.
func NewMirror(now func() time.Time) *Judge { return &Judge{mirror: true, now: now} }

// Current is the config in force (nil before any).
func (j *Judge) Current() *config.Config { return j.current }

// Exists reports whether the source was seen and not deleted since.
func (j *Judge) Exists() bool { return j.exists }

// Stale reports whether the source holds a config that is not in force.
func (j *Judge) Stale() bool { return j.stale }

// Judged reports whether version is the one judged last (Observe would
// do nothing).
func (j *Judge) Judged(version string) bool { return version != "" && version == j.version }

// Seed puts text in force before the first Observe (the controller's
// accepted copy after a restart): what was, not a decision.
func (j *Judge) Seed(text string) error {
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		return err
	}
	j.current, j.text, j.since = cfg, text, j.now()
	return nil
}

// Observe judges s. install (a gate's hook, nil for a mirror) puts a valid
// config in force or refuses it with the reason. ok is false when s is the
// version judged last: nothing to do.
func (j *Judge) Observe(s Snapshot, install func(*config.Config) error) (d Decision, ok bool) {
	if j.Judged(s.Version) {
		return Decision{}, false
	}
	j.version, j.exists = s.Version, true
	var cfg *config.Config
	var err error
	valid := false
	if !s.HasKey {
		err = fmt.Errorf("the ConfigMap has no %q key", "config")
	} else if s.Invalid != nil {
		err = s.Invalid
	} else if cfg, err = config.Parse([]byte(s.Text)); err != nil {
		err = config.WithoutResourceLines(err)
	} else {
		valid = true
		if install != nil {
			err = install(cfg)
		}
	}
	if err != nil {
		d = j.reject(s, err, valid)
	} else {
		d = j.accept(s, cfg)
	}
	d.State = j.state(s.LogLevel)
	return d, true
}

// Retry judges the last snapshot again if it was refused while valid.
func (j *Judge) Retry(install func(*config.Config) error) (Decision, bool) {
	if !j.stale || !j.refusedOK || j.last == nil {
		return Decision{}, false
	}
	j.version = ""
	return j.Observe(*j.last, install)
}

// Missing records that the source does not exist (deleted, or absent when
// a controller starts on its accepted copy): the config in force stays.
func (j *Judge) Missing() Decision {
	j.version, j.exists, j.last, j.refusedOK = "", false, nil, false
	d := Decision{Missing: true, HadConfig: j.current != nil}
	if d.HadConfig {
		if !j.stale {
			j.since = j.now()
		}
		j.stale, j.reason = true, MissingReason
	}
	d.State = j.state("")
	return d
}

// MissingReason is the stale reason while the source is missing.
const MissingReason = "the ConfigMap is missing: the last accepted configuration stays in force until it is recreated"

func (j *Judge) accept(s Snapshot, cfg *config.Config) Decision {
	// A mirror shows the stale state the controller published.
	mirrored := j.mirror && s.MirroredStale
	d := Decision{Accepted: cfg, Changed: j.text != s.Text, ValidAgain: j.stale && !mirrored}
	if j.stale != mirrored || j.since.IsZero() {
		j.since = j.now()
	}
	j.current, j.text, j.stale, j.reason, j.last = cfg, s.Text, mirrored, "", &s
	if mirrored {
		j.reason = s.MirroredReason
	}
	return d
}

func (j *Judge) reject(s Snapshot, err error, valid bool) Decision {
	if !j.stale || j.since.IsZero() {
		j.since = j.now()
	}
	d := Decision{Refused: err, RefusedValid: valid, Again: j.stale && j.reason == err.Error(),
		Kept: "no configuration has been accepted yet, so nothing is assigned or announced"}
	if j.current != nil {
		d.Kept = "the last accepted configuration stays in force"
	}
	j.stale, j.reason, j.last, j.refusedOK = true, err.Error(), &s, valid
	return d
}

func (j *Judge) state(logLevel string) State {
	return State{Text: j.text, Stale: j.stale, Reason: j.reason, Since: j.since, LogLevel: logLevel}
}
