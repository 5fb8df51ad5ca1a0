package integration

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// eventually polls cond until it holds or timeout passes.
var eventually = testenv.Eventually

func poolNames(c *config.Config) string {
	if c == nil {
		return "<none>"
	}
	var names []string
	for _, p := range c.Pools {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

func warningEvents(t *testing.T, c kubernetes.Interface, ns, name, reason string) []corev1.Event {
	t.Helper()
	evs, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + name + ",reason=" + reason,
	})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return evs.Items
}

func TestConfigReloadKeepsLastGood(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "config", Namespace: ns},
		Data: map[string]string{"config": `address-pools:
- name: default
  protocol: layer2
  addresses: [192.0.2.10-192.0.2.20]
`},
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reg := metrics.New()
	accepted := make(chan *config.Config, 10)
	w := k8s.NewConfigWatcher(k8s.ConfigWatcherOptions{
		Client: c, Namespace: ns, Log: testLogger(t),
		Recorder: k8s.NewRecorder(ctx, c, "metallb-test"), Metrics: reg,
		OnConfig: func(cfg *config.Config) { accepted <- cfg },
	})
	go w.Run(ctx)

	select {
	case cfg := <-accepted:
		if got := poolNames(cfg); got != "default" {
			t.Fatalf("first config pools = %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("first config never accepted")
	}

	// Break it: a typo and a backwards range.
	cm.Data["config"] = "address-pools:\n- name: default\n  protocol: layer2\n  adresses: [192.0.2.20-192.0.2.10]\n"
	if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the broken config to be marked stale", w.Stale)
	if got := poolNames(w.Current()); got != "default" {
		t.Errorf("config in force after a bad edit has pools %s, want the last good one (default)", got)
	}
	if got := gaugeValue(t, reg, "metallb_k8s_client_config_stale_bool"); got != 1 {
		t.Errorf("config_stale_bool = %v, want 1", got)
	}
	var evs []corev1.Event
	eventually(t, 10*time.Second, "the InvalidConfig Warning Event", func() bool {
		evs = warningEvents(t, c, ns, "config", k8s.ReasonInvalid)
		return len(evs) > 0
	})
	if evs[0].Type != corev1.EventTypeWarning || !strings.Contains(evs[0].Message, `unknown key "adresses" (did you mean "addresses"?)`) ||
		!strings.Contains(evs[0].Message, "the last accepted configuration stays in force") {
		t.Errorf("event = %s %q", evs[0].Type, evs[0].Message)
	}

	// Fix it with a second pool.
	cm.Data["config"] = "address-pools:\n- {name: default, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}\n- {name: db, protocol: layer2, addresses: [192.0.2.30/31]}\n"
	if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the fixed config to be accepted", func() bool { return poolNames(w.Current()) == "default,db" })
	if w.Stale() {
		t.Error("still stale after the fix")
	}
	if got := gaugeValue(t, reg, "metallb_k8s_client_config_stale_bool"); got != 0 {
		t.Errorf("config_stale_bool = %v after the fix, want 0", got)
	}
	if got := gaugeValue(t, reg, "metallb_k8s_client_config_loaded_bool"); got != 1 {
		t.Errorf("config_loaded_bool = %v, want 1", got)
	}
}

func gaugeValue(t *testing.T, reg *metrics.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) > 0 {
			m := mf.Metric[0]
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestLogLevelFollowsTheAnnotation changes the log level of a running
// watcher through the ConfigMap, without a restart.
func TestLogLevelFollowsTheAnnotation(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cm, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "config", Namespace: ns},
		Data:       map[string]string{"config": "address-pools: []\n"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var level slog.LevelVar
	level.Set(slog.LevelInfo)
	w := k8s.NewConfigWatcher(k8s.ConfigWatcherOptions{Client: c, Namespace: ns, Name: "config", Log: testLogger(t),
		Level: &level, BaseLevel: slog.LevelInfo})
	go w.Run(ctx)
	annotate := func(v string) {
		t.Helper()
		cur, err := c.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v == "" {
			delete(cur.Annotations, k8s.LogLevelAnnotation)
		} else {
			if cur.Annotations == nil {
				cur.Annotations = map[string]string{}
			}
			cur.Annotations[k8s.LogLevelAnnotation] = v
		}
		if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	annotate("debug")
	eventually(t, 5*time.Second, "level debug", func() bool { return level.Level() == slog.LevelDebug })
	annotate("loud") // invalid: ignored, level kept
	time.Sleep(300 * time.Millisecond)
	if level.Level() != slog.LevelDebug {
		t.Errorf("an invalid annotation changed the level to %v", level.Level())
	}
	annotate("")
	eventually(t, 5*time.Second, "back to info", func() bool { return level.Level() == slog.LevelInfo })
}

// TestConfigWatcherSyncedOnlyOnceHandled reproduces the start-up order of
// the hardening issue: the ConfigMap exists, the informer's store has it,
// but the watcher's handler is still deciding about it (Install blocked).
// Until the handler is done the watcher is not synced, so the controller
// never reads "no ConfigMap seen" and publishes it as missing.
func TestConfigWatcherSyncedOnlyOnceHandled(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	setConfig(t, c, ns, "address-pools:\n- {name: p, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}\n")
	entered, release := make(chan struct{}), make(chan struct{})
	w := k8s.NewConfigWatcher(k8s.ConfigWatcherOptions{Client: c, Namespace: ns, Log: testLogger(t),
		Install: func(*config.Config, *corev1.ConfigMap) error {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
			return nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler never saw the ConfigMap")
	}
	// The handler holds the list's only ConfigMap: probe across a window
	// longer than the informer needs to mark its own store synced.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if w.HasSynced() {
			close(release)
			t.Fatal("synced while the handler was still deciding about the ConfigMap")
		}
	}
	close(release)
	eventually(t, 10*time.Second, "synced once the handler is done", w.HasSynced)
	if !w.Seen() || w.Stale() || poolNames(w.Current()) != "p" {
		t.Errorf("after sync: seen %v, stale %v, pools %s", w.Seen(), w.Stale(), poolNames(w.Current()))
	}
}
