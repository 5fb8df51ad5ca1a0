package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/logging"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/pkg/reload"
)

// Where the configuration lives.
const (
	DefaultNamespace  = "metallb-system"
	DefaultConfigMap  = "config"
	ConfigKey         = "config"
	ReasonInvalid     = "InvalidConfig"
	ReasonConfigValid = "ConfigLoaded"
	// ReasonNotAnnounced: an IPAddressPool that no advertisement selects
	// (its addresses are assigned, and nothing answers for them).
	ReasonNotAnnounced = "NotAnnounced"
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
	level     *slog.LevelVar
	baseLevel slog.Level

	loaded, stale prometheus.Gauge
	reloads       *prometheus.CounterVec

	// hmu serialises decisions (the informer's, Retry's, MarkMissing's),
	// so that an older ConfigMap is never judged after a newer one, and
	// only its holder touches judge.
	hmu   sync.Mutex
	judge *reload.Judge
	cm    *corev1.ConfigMap // the latest seen, nil when there is none
	res   *resourceWatch    // the metallb.io resources (nil: not read)
	// objects is res for readers that may run under hmu (the Install hook).
	objects atomic.Pointer[resourceWatch]
	dyn     dynamic.Interface
	judged  bool // the first judgement, once everything was listed, is made

	// mu guards what the readers see of the judge's state, copied after
	// each decision (the hooks the judge calls may read it).
	mu      sync.Mutex
	current *config.Config
	isStale bool
	exists  bool
	refused error // the last text this watcher refused, until one is accepted
	ready   bool  // judged once, with every source listed
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
	// Dynamic, when set, adds the metallb.io resources of the namespace
	// to the ConfigMap (the controller's; the speakers run on the
	// accepted copy, which holds both).
	Dynamic dynamic.Interface
}

// NewConfigWatcher builds a watcher; Run starts it.
func NewConfigWatcher(o ConfigWatcherOptions) *ConfigWatcher {
	w := &ConfigWatcher{
		client: o.Client, namespace: o.Namespace, name: o.Name, log: o.Log,
		recorder: o.Recorder, onConfig: o.OnConfig, install: o.Install, onState: o.OnState,
		level: o.Level, baseLevel: o.BaseLevel, dyn: o.Dynamic,
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
	if o.MirrorState {
		w.judge = reload.NewMirror(time.Now)
	} else {
		w.judge = reload.NewGate(time.Now)
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
	synced := []cache.InformerSynced{reg.HasSynced}
	if w.dyn != nil {
		if ServesResources(ctx, w.dyn, w.namespace) {
			res, err := newResourceWatch(w.dyn, w.namespace, w.resourcesChanged)
			if err != nil {
				w.log.Error("cannot watch the metallb.io resources", "error", err)
				return
			}
			w.hmu.Lock()
			w.res = res
			w.hmu.Unlock()
			w.objects.Store(res)
			synced = append(synced, res.hasSynced)
			res.start(ctx.Done())
			defer res.shutdown()
		} else {
			w.log.Info("the metallb.io resources are not served (their CRDs are not installed): the ConfigMap alone is the configuration", "namespace", w.namespace)
		}
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	// The first judgement waits until every source is listed: judged on
	// the ConfigMap alone, a configuration whose pools are resources would
	// look like one that takes every address.
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	w.hmu.Lock()
	w.judged = true
	w.judgeNow()
	w.hmu.Unlock()
	w.mu.Lock()
	w.ready = true
	w.mu.Unlock()
	<-ctx.Done()
}

// HasSynced reports whether the watcher has judged every source once.
func (w *ConfigWatcher) HasSynced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ready
}

// Current returns the config in force (nil before any valid one).
func (w *ConfigWatcher) Current() *config.Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Refused returns why this watcher refused the text its ConfigMap holds
// now (nil: it runs on it). For a speaker, that is its own reading of the
// accepted copy, not the controller's verdict.
func (w *ConfigWatcher) Refused() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
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
	w.hmu.Lock()
	defer w.hmu.Unlock()
	if err := w.judge.Seed(text); err != nil {
		return err
	}
	w.sync()
	w.loaded.Set(1)
	return nil
}

// Retry judges the last seen configuration again if it was refused while
// valid (what made it dangerous may be gone, e.g. the Services it would
// move).
func (w *ConfigWatcher) Retry() {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	if !w.judged {
		return
	}
	cm := w.eventObject()
	if d, ok := w.judge.Retry(w.installFor(cm)); ok {
		w.act(cm, d)
	}
}

func (w *ConfigWatcher) handle(cm *corev1.ConfigMap) {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	w.cm = cm
	w.applyLogLevel(cm)
	w.judgeNow()
}

func (w *ConfigWatcher) resourcesChanged() {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	w.judgeNow()
}

// eventObject is what Events about the configuration are on: the
// ConfigMap, or an empty one when there is none. Caller holds w.hmu.
func (w *ConfigWatcher) eventObject() *corev1.ConfigMap {
	if w.cm == nil {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: w.namespace, Name: w.name}}
	}
	return w.cm
}

// judgeNow judges what the sources hold now: the ConfigMap's config
// followed by the resources. Caller holds w.hmu.
func (w *ConfigWatcher) judgeNow() {
	if !w.judged {
		return // the first judgement comes once every source is listed
	}
	var docs [][]byte
	var version string
	if w.res != nil {
		var err error
		if docs, version, err = w.res.snapshot(); err != nil {
			w.log.Error("cannot read the metallb.io resources", "error", err)
			return
		}
	}
	if w.cm == nil && len(docs) == 0 {
		if w.judge.Exists() {
			w.act(w.eventObject(), w.judge.Missing())
		}
		return
	}
	cm := w.eventObject()
	s := reload.Snapshot{Version: cm.ResourceVersion + "|" + version, LogLevel: cm.Annotations[LogLevelAnnotation]}
	text, hasKey := cm.Data[ConfigKey]
	s.HasKey = hasKey || w.cm == nil // resources alone need no ConfigMap
	if w.judge.Judged(s.Version) {
		return
	}
	s.Text, s.Invalid = text, nil
	// The speakers' source is the accepted copy, which already holds the
	// resources (several YAML documents): only the controller combines.
	if w.res != nil {
		if combined, err := config.Combine(text, docs); err != nil {
			s.Invalid = err
		} else {
			s.Text = combined
		}
	}
	s.MirroredStale = cm.Annotations[StateAnnotation] == stateStale
	s.MirroredReason = cm.Annotations[StateReasonAnnotation]
	d, ok := w.judge.Observe(s, w.installFor(cm))
	if !ok {
		return
	}
	w.act(cm, d)
}

// resourceEvent records an Event on the metallb.io object kind/name, when
// it exists.
func (w *ConfigWatcher) resourceEvent(kind, name, eventType, reason, msg string) {
	if w.recorder == nil || w.res == nil {
		return
	}
	if u := w.res.object(kind, name); u != nil {
		w.recorder.Event(u, eventType, reason, msg)
	}
}

// ResourceAnnotation returns annotation key of the metallb.io object
// kind/name ("" when it or the object is not there).
func (w *ConfigWatcher) ResourceAnnotation(kind, name, key string) string {
	res := w.objects.Load()
	if res == nil {
		return ""
	}
	if u := res.object(kind, name); u != nil {
		return u.GetAnnotations()[key]
	}
	return ""
}

// ErrResourcesNotRead: the metallb.io resources were not served when the
// watcher started, so it does not read them.
var ErrResourcesNotRead = errors.New("the controller does not read the metallb.io resources (their CRDs were not served when it started): restart it to read them")

// Prospective returns the configuration text the sources would hold if
// obj, a metallb.io object of kind, were stored as it is (kind ""), or if
// the ConfigMap held text (text not nil), for a judgement before the edit.
func (w *ConfigWatcher) Prospective(kind string, obj *unstructured.Unstructured, text *string) (string, error) {
	w.hmu.Lock()
	cmText := ""
	if w.cm != nil {
		cmText = w.cm.Data[ConfigKey]
	}
	res := w.res
	w.hmu.Unlock()
	if text != nil {
		cmText = *text
	}
	if res == nil {
		if kind != "" {
			return "", ErrResourcesNotRead
		}
		return cmText, nil
	}
	docs, _, err := res.snapshotWith(kind, obj)
	if err != nil {
		return "", err
	}
	return config.Combine(cmText, docs)
}

// ConfigMapAnnotation returns annotation key of the ConfigMap as last seen.
func (w *ConfigWatcher) ConfigMapAnnotation(key string) string {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	if w.cm == nil {
		return ""
	}
	return w.cm.Annotations[key]
}

// Deleting reports whether the metallb.io object kind/name is being
// deleted (held by a finalizer).
func (w *ConfigWatcher) Deleting(kind, name string) bool {
	res := w.objects.Load()
	if res == nil {
		return false
	}
	u := res.object(kind, name)
	return u != nil && u.GetDeletionTimestamp() != nil
}

// maxObjectEvents caps the objects one refusal records Events on.
const maxObjectEvents = 10

// objectErrors records a Warning Event on each metallb.io object a refused
// configuration's errors are in, with those errors.
func (w *ConfigWatcher) objectErrors(d reload.Decision) {
	var moved *AddressChangeError
	if errors.As(d.Refused, &moved) {
		names := moved.PoolNames()
		for _, p := range names[:min(len(names), maxObjectEvents)] {
			w.resourceEvent(config.KindIPAddressPool, p, corev1.EventTypeWarning, ReasonInvalid, moved.PoolMessage(p))
		}
		return
	}
	var errs config.Errors
	if !errors.As(d.Refused, &errs) {
		return
	}
	var order []string
	msgs := map[string][]string{}
	for _, e := range errs {
		if e.Object == "" {
			continue
		}
		if _, ok := msgs[e.Object]; !ok {
			order = append(order, e.Object)
		}
		msgs[e.Object] = append(msgs[e.Object], e.Msg)
	}
	for _, obj := range order[:min(len(order), maxObjectEvents)] {
		kind, name, _ := strings.Cut(obj, "/")
		msg := fmt.Sprintf("this object makes the configuration invalid (%s): %s", d.Kept, strings.Join(msgs[obj], "; "))
		if len(msg) > 1000 {
			msg = msg[:1000] + "..."
		}
		w.resourceEvent(kind, name, corev1.EventTypeWarning, ReasonInvalid, msg)
	}
}

// installFor is the judge's hook for cm: the Install option, given cm.
func (w *ConfigWatcher) installFor(cm *corev1.ConfigMap) func(*config.Config) error {
	if w.install == nil {
		return nil
	}
	return func(cfg *config.Config) error { return w.install(cfg, cm) }
}

// sync copies what readers see of the judge. Caller holds w.hmu.
func (w *ConfigWatcher) sync() {
	w.mu.Lock()
	w.current, w.isStale, w.exists = w.judge.Current(), w.judge.Stale(), w.judge.Exists()
	w.mu.Unlock()
}

// act carries out a decision on cm: logs, Events, metrics, OnConfig and
// OnState. Caller holds w.hmu.
func (w *ConfigWatcher) act(cm *corev1.ConfigMap, d reload.Decision) {
	w.sync()
	w.mu.Lock()
	switch {
	case d.Accepted != nil:
		w.refused = nil
	case d.Refused != nil:
		w.refused = d.Refused
	}
	w.mu.Unlock()
	cmName := w.namespace + "/" + w.name
	switch {
	case d.Accepted != nil:
		w.loaded.Set(1)
		w.stale.Set(boolFloat(d.State.Stale))
		w.reloads.WithLabelValues("accepted").Inc()
		if d.Changed {
			w.log.Info("configuration loaded", "configmap", cmName, "pools", len(d.Accepted.Pools), "peers", len(d.Accepted.Peers))
			for _, warn := range d.Accepted.Warnings {
				w.log.Warn("configuration warning", "configmap", cmName, "warning", warn)
			}
			for _, p := range d.Accepted.Pools {
				if p.Resource && p.Protocol == config.Unannounced {
					w.resourceEvent(config.KindIPAddressPool, p.Name, corev1.EventTypeWarning, ReasonNotAnnounced, fmt.Sprintf(
						"no L2Advertisement or BGPAdvertisement selects this pool: its addresses are assigned but nothing answers for them (add one, e.g. an L2Advertisement with ipAddressPools: [%s])", p.Name))
				}
			}
		}
		if d.ValidAgain && w.recorder != nil {
			w.recorder.Event(cm, corev1.EventTypeNormal, ReasonConfigValid, "configuration is valid again and in force")
		}
		if w.onConfig != nil {
			w.onConfig(d.Accepted)
		}
	case d.Refused != nil && !d.Again:
		w.stale.Set(1)
		w.reloads.WithLabelValues("rejected").Inc()
		what := "configuration refused"
		if d.RefusedValid {
			what = "configuration refused, although valid"
		}
		w.log.Error(what, "configmap", cmName, "error", d.Refused.Error(), "kept", d.Kept)
		if w.recorder != nil {
			msg := fmt.Sprintf("%s (%s): %s", what, d.Kept, strings.ReplaceAll(d.Refused.Error(), "\n", "; "))
			if len(msg) > 1000 {
				msg = msg[:1000] + "..."
			}
			w.recorder.Event(cm, corev1.EventTypeWarning, ReasonInvalid, msg)
		}
		w.objectErrors(d)
	case d.Missing:
		if !d.HadConfig {
			return
		}
		w.stale.Set(1)
		w.log.Warn(reload.MissingReason, "configmap", cmName)
	}
	if w.onState != nil {
		st := d.State
		w.onState(ConfigState{Text: st.Text, Stale: st.Stale, Reason: st.Reason, Since: st.Since, LogLevel: st.LogLevel})
	}
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

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (w *ConfigWatcher) handleDelete() {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	w.cm = nil
	w.judgeNow()
}

// MarkMissing records that the ConfigMap does not exist (deleted, or never
// there when a controller starts on its accepted copy): the config in force
// stays, and the state says so.
func (w *ConfigWatcher) MarkMissing() {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	w.cm = nil
	w.act(w.eventObject(), w.judge.Missing())
}
