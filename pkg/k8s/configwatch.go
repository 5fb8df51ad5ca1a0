package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/logging"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// Where the configuration lives.
const (
	DefaultNamespace  = "metallb-system"
	DefaultConfigMap  = "config"
	ConfigKey         = "config"
	ReasonInvalid     = "InvalidConfig"
	ReasonConfigValid = "ConfigLoaded"
	// LogLevelAnnotation on the ConfigMap sets the log level of every
	// controller and speaker while they run (debug, info, warn, error);
	// without it they log at their --log-level.
	LogLevelAnnotation = "metallb.io/log-level"
)

// ConfigWatcher keeps the config in force: it watches the ConfigMap, accepts
// valid edits and refuses invalid ones, keeping the last good config. Refusals
// are logged, raised as a Warning Event on the ConfigMap, and shown by the
// metallb_k8s_client_config_stale_bool metric.
type ConfigWatcher struct {
	client    kubernetes.Interface
	namespace string
	name      string
	log       *slog.Logger
	recorder  record.EventRecorder
	onConfig  func(*config.Config)
	install   func(*config.Config, *corev1.ConfigMap) error
	onState   func(ConfigState)
	mirror    bool
	level     *slog.LevelVar
	baseLevel slog.Level

	loaded, stale prometheus.Gauge
	reloads       *prometheus.CounterVec

	// hmu serialises decisions (the informer's and Retry's), so that an
	// older ConfigMap is never judged after a newer one.
	hmu sync.Mutex

	mu          sync.Mutex
	refusedOK   bool // the config refused was valid (Install said no): worth a Retry
	current     *config.Config
	currentText string
	isStale     bool
	reason      string
	since       time.Time
	lastRV      string
	last        *corev1.ConfigMap // last seen, for Retry
	exists      bool              // the ConfigMap exists
	synced      cache.InformerSynced
}

// ConfigWatcherOptions configure NewConfigWatcher.
type ConfigWatcherOptions struct {
	Client    kubernetes.Interface
	Namespace string // default metallb-system
	Name      string // default config
	Log       *slog.Logger
	Recorder  record.EventRecorder // nil: no Events
	Metrics   *metrics.Registry    // nil: no metrics
	// OnConfig is called with every newly accepted config, one call at a time.
	OnConfig func(*config.Config)
	// Install, when set, puts a valid new config in force, or refuses it
	// with an error saying why (the controller refuses edits that would take
	// addresses from Services). A refused config is treated like an invalid
	// one: the config in force stays, and the refusal is visible.
	Install func(*config.Config, *corev1.ConfigMap) error
	// OnState is called after every decision with the state to publish.
	OnState func(ConfigState)
	// MirrorState: the ConfigMap is the controller's accepted copy, and its
	// StateAnnotation sets the stale metric (the speakers).
	MirrorState bool
	// Level, when set, follows the ConfigMap's LogLevelAnnotation, and
	// returns to BaseLevel when the annotation goes.
	Level     *slog.LevelVar
	BaseLevel slog.Level
}

// NewConfigWatcher builds a watcher; Run starts it.
func NewConfigWatcher(o ConfigWatcherOptions) *ConfigWatcher {
	w := &ConfigWatcher{
		client: o.Client, namespace: o.Namespace, name: o.Name, log: o.Log,
		recorder: o.Recorder, onConfig: o.OnConfig, install: o.Install, onState: o.OnState, mirror: o.MirrorState,
		level: o.Level, baseLevel: o.BaseLevel,
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "k8s_client", Name: "config_loaded_bool",
			Help: "1 if a valid configuration has been loaded.",
		}),
		stale: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "k8s_client", Name: "config_stale_bool",
			Help: "1 if the ConfigMap holds an invalid configuration and the last good one is still in force.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "k8s_client", Name: "config_reloads_total",
			Help: "Configuration reloads by result (accepted, rejected).",
		}, []string{"result"}),
	}
	if w.namespace == "" {
		w.namespace = DefaultNamespace
	}
	if w.name == "" {
		w.name = DefaultConfigMap
	}
	if o.Metrics != nil {
		o.Metrics.MustRegister(w.loaded, w.stale, w.reloads)
	}
	return w
}

// Run watches the ConfigMap until ctx ends.
func (w *ConfigWatcher) Run(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(w.client, 0,
		informers.WithNamespace(w.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", w.name).String()
		}))
	inf := factory.Core().V1().ConfigMaps().Informer()
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.handle(obj.(*corev1.ConfigMap)) },
		UpdateFunc: func(_, obj any) { w.handle(obj.(*corev1.ConfigMap)) },
		DeleteFunc: func(any) { w.handleDelete() },
	})
	if err != nil {
		w.log.Error("cannot watch the ConfigMap", "error", err)
		return
	}
	// The registration's HasSynced, not the informer's: the informer's is
	// true once the list is in its store, which can be before this handler
	// has seen it, and the watcher's state is what the handler recorded (a
	// ConfigMap that exists could be published as missing).
	w.mu.Lock()
	w.synced = reg.HasSynced
	w.mu.Unlock()
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}

// HasSynced reports whether the watcher has seen the ConfigMap's state once.
func (w *ConfigWatcher) HasSynced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced != nil && w.synced()
}

// Current returns the config in force (nil before any valid one).
func (w *ConfigWatcher) Current() *config.Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Seen reports whether the ConfigMap exists.
func (w *ConfigWatcher) Seen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.exists
}

// Stale reports whether the ConfigMap holds a config that was refused.
func (w *ConfigWatcher) Stale() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.isStale
}

// Seed puts a config in force before the watch starts (the controller's
// accepted copy, after a restart). It is not published: it is what was.
func (w *ConfigWatcher) Seed(text string) error {
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.current, w.currentText, w.since = cfg, text, time.Now()
	w.mu.Unlock()
	w.loaded.Set(1)
	return nil
}

// Retry judges the last seen ConfigMap again if it was refused while valid
// (what made it dangerous may be gone, e.g. the Services it would move).
func (w *ConfigWatcher) Retry() {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	w.mu.Lock()
	cm := w.last
	retry := w.isStale && w.refusedOK && cm != nil
	if retry {
		w.lastRV = ""
	}
	w.mu.Unlock()
	if retry {
		w.decide(cm)
	}
}

func (w *ConfigWatcher) handle(cm *corev1.ConfigMap) {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	w.decide(cm)
}

// decide judges one ConfigMap. Caller holds w.hmu.
func (w *ConfigWatcher) decide(cm *corev1.ConfigMap) {
	w.mu.Lock()
	if cm.ResourceVersion != "" && cm.ResourceVersion == w.lastRV {
		w.mu.Unlock()
		return
	}
	w.lastRV, w.exists = cm.ResourceVersion, true
	w.mu.Unlock()
	w.applyLogLevel(cm)

	data, ok := cm.Data[ConfigKey]
	var cfg *config.Config
	var err error
	valid := false
	if !ok {
		err = fmt.Errorf("the ConfigMap has no %q key", ConfigKey)
	} else {
		cfg, err = config.Parse([]byte(data))
	}
	if err == nil {
		valid = true
		if w.install != nil {
			err = w.install(cfg, cm)
		}
	}
	if err != nil {
		w.reject(cm, err, valid)
	} else {
		w.accept(cm, cfg, data)
	}
	w.publish(cm)
}

// publish hands the state to OnState.
func (w *ConfigWatcher) publish(cm *corev1.ConfigMap) {
	if w.onState == nil {
		return
	}
	w.mu.Lock()
	st := ConfigState{Text: w.currentText, Stale: w.isStale, Reason: w.reason, Since: w.since, LogLevel: cm.Annotations[LogLevelAnnotation]}
	w.mu.Unlock()
	w.onState(st)
}

// applyLogLevel follows the log-level annotation, whatever the config's
// validity: debugging a refused config is when it is needed most.
func (w *ConfigWatcher) applyLogLevel(cm *corev1.ConfigMap) {
	if w.level == nil {
		return
	}
	want := w.baseLevel
	if v, ok := cm.Annotations[LogLevelAnnotation]; ok {
		lvl, err := logging.ParseLevel(v)
		if err != nil {
			w.log.Warn("ignoring the log-level annotation", "annotation", LogLevelAnnotation, "error", err)
			return
		}
		want = lvl
	}
	if w.level.Level() != want {
		w.log.Info("log level changed", "level", want.String(), "annotation", LogLevelAnnotation)
		w.level.Set(want)
	}
}

func (w *ConfigWatcher) accept(cm *corev1.ConfigMap, cfg *config.Config, text string) {
	// The controller's copy says whether the operator's ConfigMap was
	// refused: the speakers show the same stale state.
	mirrored := w.mirror && cm.Annotations[StateAnnotation] == stateStale
	w.mu.Lock()
	wasStale, changed := w.isStale, w.currentText != text
	if wasStale != mirrored || w.since.IsZero() {
		w.since = time.Now()
	}
	w.current, w.currentText, w.isStale, w.reason, w.last = cfg, text, mirrored, "", cm
	if mirrored {
		w.reason = cm.Annotations[StateReasonAnnotation]
	}
	w.mu.Unlock()
	w.loaded.Set(1)
	w.stale.Set(boolFloat(mirrored))
	w.reloads.WithLabelValues("accepted").Inc()
	if changed {
		w.log.Info("configuration loaded", "configmap", w.namespace+"/"+w.name, "pools", len(cfg.Pools), "peers", len(cfg.Peers))
		for _, warn := range cfg.Warnings {
			w.log.Warn("configuration warning", "configmap", w.namespace+"/"+w.name, "warning", warn)
		}
	}
	if wasStale && !mirrored && w.recorder != nil {
		w.recorder.Event(cm, corev1.EventTypeNormal, ReasonConfigValid, "configuration is valid again and in force")
	}
	if w.onConfig != nil {
		w.onConfig(cfg)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// reject keeps the config in force. valid: the config parsed but Install
// refused it.
func (w *ConfigWatcher) reject(cm *corev1.ConfigMap, err error, valid bool) {
	w.mu.Lock()
	if !w.isStale || w.since.IsZero() {
		w.since = time.Now()
	}
	again := w.isStale && w.reason == err.Error()
	w.isStale, w.reason, w.last, w.refusedOK = true, err.Error(), cm, valid
	hasGood := w.current != nil
	w.mu.Unlock()
	if again {
		return // judged again (Retry), same verdict: said already
	}
	w.stale.Set(1)
	w.reloads.WithLabelValues("rejected").Inc()
	kept := "no configuration has been accepted yet, so nothing is assigned or announced"
	if hasGood {
		kept = "the last accepted configuration stays in force"
	}
	what := "configuration refused"
	if valid {
		what = "configuration refused, although valid"
	}
	w.log.Error(what, "configmap", w.namespace+"/"+w.name, "error", err.Error(), "kept", kept)
	if w.recorder != nil {
		msg := fmt.Sprintf("%s (%s): %s", what, kept, strings.ReplaceAll(err.Error(), "\n", "; "))
		if len(msg) > 1000 {
			msg = msg[:1000] + "..."
		}
		w.recorder.Event(cm, corev1.EventTypeWarning, ReasonInvalid, msg)
	}
}

func (w *ConfigWatcher) handleDelete() { w.MarkMissing() }

// MarkMissing records that the ConfigMap does not exist (deleted, or never
// there when a controller starts on its accepted copy): the config in force
// stays, and the state says so.
func (w *ConfigWatcher) MarkMissing() {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	w.mu.Lock()
	w.lastRV, w.exists, w.last, w.refusedOK = "", false, nil, false
	has := w.current != nil
	if has {
		if !w.isStale {
			w.since = time.Now()
		}
		w.isStale, w.reason = true, "the ConfigMap is missing: the last accepted configuration stays in force until it is recreated"
	}
	w.mu.Unlock()
	if !has {
		return
	}
	w.stale.Set(1)
	w.log.Warn("the ConfigMap is missing: the last accepted configuration stays in force until it is recreated",
		"configmap", w.namespace+"/"+w.name)
	w.publish(&corev1.ConfigMap{})
}
