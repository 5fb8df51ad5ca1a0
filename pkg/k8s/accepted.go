package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/manifests"
)

// The controller keeps the configuration it last accepted in a ConfigMap of
// its own, AcceptedName(config): the speakers run on it (so the controller
// alone judges edits and every component runs the same config), and a
// controller or speaker that starts while the operator's ConfigMap is
// invalid or missing runs on it instead of on nothing. Its annotations
// publish the verdict on the operator's ConfigMap.
const (
	// AllowChangesAnnotation on the operator's ConfigMap lets an edit take
	// or change the addresses of Services (they are renumbered, with an
	// IPChanged Event each). Without it such an edit is refused.
	AllowChangesAnnotation = "metallb.io/allow-address-changes"
	// StateAnnotation is "accepted" or "stale" (the operator's ConfigMap
	// holds a config that was refused); StateSinceAnnotation is when that
	// state began (RFC 3339) and StateReasonAnnotation why a config was
	// refused.
	StateAnnotation       = "metallb.io/config-state"
	StateSinceAnnotation  = "metallb.io/config-state-since"
	StateReasonAnnotation = "metallb.io/config-stale-reason"

	stateAccepted = "accepted"
	stateStale    = "stale"
	maxReasonLen  = 2000
)

// AcceptedName is the name of the ConfigMap holding the accepted copy of
// ConfigMap name.
func AcceptedName(name string) string { return name + "-accepted" }

// ConfigState is what the controller publishes in the accepted ConfigMap.
type ConfigState struct {
	Text     string // the config in force ("" when none was ever accepted)
	Stale    bool
	Reason   string
	Since    time.Time
	LogLevel string // the operator's LogLevelAnnotation, passed on to the speakers
}

func (s ConfigState) annotations() map[string]string {
	a := map[string]string{StateAnnotation: stateAccepted, StateSinceAnnotation: s.Since.UTC().Format(time.RFC3339)}
	if s.Stale {
		a[StateAnnotation] = stateStale
		r := s.Reason
		if len(r) > maxReasonLen {
			r = r[:maxReasonLen] + "..."
		}
		a[StateReasonAnnotation] = r
	}
	if s.LogLevel != "" {
		a[LogLevelAnnotation] = s.LogLevel
	}
	return a
}

// AcceptedWriter writes the latest ConfigState to the accepted ConfigMap,
// only when it differs from what is there, retrying failures.
type AcceptedWriter struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // the accepted ConfigMap's name
	Log       *slog.Logger

	mu     sync.Mutex
	latest *ConfigState
	wake   chan struct{}
	once   sync.Once
}

func (w *AcceptedWriter) init() { w.once.Do(func() { w.wake = make(chan struct{}, 1) }) }

// Set records the state to write; only the latest is written.
func (w *AcceptedWriter) Set(s ConfigState) {
	w.init()
	if s.Text == "" {
		return // nothing accepted yet: nothing to keep
	}
	w.mu.Lock()
	w.latest = &s
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run writes until ctx ends.
func (w *AcceptedWriter) Run(ctx context.Context) {
	w.init()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-retry:
		}
		retry = nil
		w.mu.Lock()
		s := w.latest
		w.mu.Unlock()
		if s == nil {
			continue
		}
		if err := w.write(ctx, *s); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.Log.Error("cannot keep the accepted configuration", "configmap", w.Namespace+"/"+w.Name, "error", err)
			retry = time.After(2 * time.Second)
		}
	}
}

func (w *AcceptedWriter) write(ctx context.Context, s ConfigState) error {
	cms := w.Client.CoreV1().ConfigMaps(w.Namespace)
	cm, err := cms.Get(ctx, w.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Annotations: s.annotations(), Labels: acceptedLabels()},
			Data:       map[string]string{ConfigKey: s.Text},
		}, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) {
			return fmt.Errorf("ConfigMap %s/%s is missing and the controller may only update it: run the enable hook itself again to recreate it (see: metallb enable --help): %w", w.Namespace, w.Name, err)
		}
		return err
	}
	if err != nil {
		return err
	}
	want := s.annotations()
	got := map[string]string{}
	for k := range want {
		got[k] = cm.Annotations[k]
	}
	for _, k := range []string{StateReasonAnnotation, LogLevelAnnotation} {
		if v, ok := cm.Annotations[k]; ok {
			got[k] = v
		}
	}
	// The since stamp alone does not warrant a write.
	got[StateSinceAnnotation], want[StateSinceAnnotation] = "", ""
	if cm.Data[ConfigKey] == s.Text && maps.Equal(got, want) {
		return nil
	}
	cm = cm.DeepCopy()
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	delete(cm.Annotations, StateReasonAnnotation)
	delete(cm.Annotations, LogLevelAnnotation)
	maps.Copy(cm.Annotations, s.annotations())
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[ConfigKey] = s.Text
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

func acceptedLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "metallb", "app.kubernetes.io/part-of": manifests.PartOf, "app.kubernetes.io/component": "controller"}
}

// EnsureAccepted creates the accepted ConfigMap with text if it does not
// exist (the controller may only update it), and says whether it did. An
// existing one is kept: it is the controller's.
func EnsureAccepted(ctx context.Context, c kubernetes.Interface, namespace, name, text string) (bool, error) {
	_, err := c.CoreV1().ConfigMaps(namespace).Create(ctx, AcceptedObject(namespace, name, text), metav1.CreateOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsAlreadyExists(err):
		return false, nil
	}
	return false, fmt.Errorf("create ConfigMap %s/%s: %w", namespace, AcceptedName(name), err)
}

// AcceptedObject is the accepted copy of the ConfigMap name holding text,
// accepted now.
func AcceptedObject(namespace, name, text string) *corev1.ConfigMap {
	s := ConfigState{Text: text, Since: time.Now()}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: AcceptedName(name), Namespace: namespace, Annotations: s.annotations(), Labels: acceptedLabels()},
		Data:       map[string]string{ConfigKey: text},
	}
}
