package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/config"
)

// ConfigurationStateGVR is MetalLB's ConfigurationState: one object per
// component ("controller", "speaker-NODE") saying whether the
// configuration it runs on is the one the sources hold.
var ConfigurationStateGVR = schema.GroupVersionResource{Group: config.Group, Version: "v1beta1", Resource: "configurationstates"}

// ServiceL2StatusGVR is the kind by which each speaker says which Services
// it answers for by layer2.
var ServiceL2StatusGVR = schema.GroupVersionResource{Group: config.Group, Version: "v1beta1", Resource: "servicel2statuses"}

// ServiceBGPStatusGVR is the kind by which each speaker says to which peers
// it advertises each Service.
var ServiceBGPStatusGVR = schema.GroupVersionResource{Group: config.Group, Version: "v1beta1", Resource: "servicebgpstatuses"}

// ConfigurationState results, as MetalLB names them.
const (
	ResultValid   = "Valid"
	ResultInvalid = "Invalid"
	// PoolFinalizer is on each IPAddressPool whose addresses Services
	// hold: deleting such a pool waits until they are released (or the
	// pool allows the change, AllowChangesAnnotation), instead of the
	// object vanishing while the controller keeps it in force.
	PoolFinalizer = "metallb.io/pool-protection"
	// ControllerState is the controller's ConfigurationState.
	ControllerState  = "controller"
	maxErrorSummary  = 4000
	statusMinPause   = time.Second // between two rounds of writes: a bulk is one round
	statusRetryPause = 2 * time.Second
)

// SpeakerState is the ConfigurationState of the speaker on node.
func SpeakerState(node string) string { return "speaker-" + node }

// PoolStatus is an IPAddressPool's status, as MetalLB v0.15 defines it.
type PoolStatus struct {
	AssignedIPv4  int64 `json:"assignedIPv4"`
	AssignedIPv6  int64 `json:"assignedIPv6"`
	AvailableIPv4 int64 `json:"availableIPv4"`
	AvailableIPv6 int64 `json:"availableIPv6"`
}

// StateStatus is a ConfigurationState's status.
type StateStatus struct {
	Result       string `json:"result"`
	ErrorSummary string `json:"errorSummary,omitempty"`
}

// StatusWriter writes one component's status on the metallb.io objects:
// its ConfigurationState and, for the controller, each IPAddressPool's
// status and PoolFinalizer. It writes only what differs from what the objects show, at most
// one round a second (a bulk of assignments is one write per pool), and
// retries failures. Set* only record the latest; Run's goroutine alone
// talks to the API server.
type StatusWriter struct {
	Dynamic   dynamic.Interface
	Namespace string
	State     string // the ConfigurationState's name
	Log       *slog.Logger

	mu    sync.Mutex
	state *StateStatus
	pools map[string]PoolStatus
	wake  chan struct{}
	once  sync.Once
}

func (w *StatusWriter) init() { w.once.Do(func() { w.wake = make(chan struct{}, 1) }) }

func (w *StatusWriter) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// SetState records the configuration's verdict: valid, or refused for
// reason (the configuration in force stays).
func (w *StatusWriter) SetState(valid bool, reason string) {
	w.init()
	s := StateStatus{Result: ResultValid}
	if !valid {
		s = StateStatus{Result: ResultInvalid, ErrorSummary: reason}
		if len(s.ErrorSummary) > maxErrorSummary {
			s.ErrorSummary = s.ErrorSummary[:maxErrorSummary] + "..."
		}
	}
	w.mu.Lock()
	w.state = &s
	w.mu.Unlock()
	w.kick()
}

// SetPools records the status of every IPAddressPool in force (pools
// not named are left as they are).
func (w *StatusWriter) SetPools(pools map[string]PoolStatus) {
	w.init()
	w.mu.Lock()
	w.pools = pools
	w.mu.Unlock()
	w.kick()
}

// Run writes until ctx ends. It writes nothing when the metallb.io kinds
// are not served.
func (w *StatusWriter) Run(ctx context.Context) {
	w.init()
	if !w.served(ctx) {
		return
	}
	var shownState *StateStatus
	shownPools := map[string]PoolStatus{}
	finalized := map[string]bool{} // the pools that carry PoolFinalizer
	seeded := false
	var pause <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		if pause != nil {
			select { // let a burst gather into one round
			case <-ctx.Done():
				return
			case <-pause:
			}
		}
		w.mu.Lock()
		state, pools := w.state, w.pools
		w.mu.Unlock()
		failed := false
		if !seeded && pools != nil { // a speaker has no pools to show
			if err := w.seed(ctx, shownPools, finalized); err != nil {
				failed = true
				w.Log.Warn("cannot read the IPAddressPools' status", "namespace", w.Namespace, "error", err)
			} else {
				seeded = true
			}
		}
		if state != nil && (shownState == nil || *shownState != *state) {
			if err := w.writeState(ctx, *state); err != nil {
				failed = true
				w.Log.Warn("cannot write the ConfigurationState", "configurationstate", w.Namespace+"/"+w.State, "error", err)
			} else {
				shownState = state
			}
		}
		for name, ps := range pools {
			if old, ok := shownPools[name]; seeded && ok && old == ps {
				continue
			}
			err := w.patch(ctx, ResourceGVRs[config.KindIPAddressPool], name, ps)
			switch {
			case err == nil, apierrors.IsNotFound(err): // gone: nothing to show it on
				shownPools[name] = ps
			default:
				failed = true
				w.Log.Warn("cannot write an IPAddressPool's status", "ipaddresspool", w.Namespace+"/"+name, "error", err)
			}
		}
		if pools != nil && seeded && !w.finalize(ctx, pools, finalized) {
			failed = true
		}
		wait := statusMinPause
		if failed {
			wait = statusRetryPause
			w.kick()
		}
		pause = time.After(wait)
	}
}

// served says whether the kinds this writer writes are served: for the
// controller every configuration kind, for a speaker (which shows no pools)
// the ConfigurationState alone.
func (w *StatusWriter) served(ctx context.Context) bool {
	if w.State == ControllerState {
		return ServesResources(ctx, w.Dynamic, w.Namespace)
	}
	_, err := w.Dynamic.Resource(ConfigurationStateGVR).Namespace(w.Namespace).List(ctx, metav1.ListOptions{Limit: 1})
	return err == nil
}

// seed learns what the pools show now, so a restart writes nothing that
// is already there.
func (w *StatusWriter) seed(ctx context.Context, shown map[string]PoolStatus, finalized map[string]bool) error {
	list, err := w.Dynamic.Resource(ResourceGVRs[config.KindIPAddressPool]).Namespace(w.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, u := range list.Items {
		if slices.Contains(u.GetFinalizers(), PoolFinalizer) {
			finalized[u.GetName()] = true
		}
		st, ok, _ := unstructured.NestedMap(u.Object, "status")
		if !ok {
			continue
		}
		var ps PoolStatus
		b, _ := json.Marshal(st)
		if json.Unmarshal(b, &ps) == nil {
			shown[u.GetName()] = ps
		}
	}
	return nil
}

// DeleteState deletes the ConfigurationState (a speaker that stops for
// good: its node has no speaker any more), waiting at most timeout.
func (w *StatusWriter) DeleteState(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := w.Dynamic.Resource(ConfigurationStateGVR).Namespace(w.Namespace).Delete(ctx, w.State, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ConfigurationState %s/%s: %w", w.Namespace, w.State, err)
	}
	return nil
}

func (w *StatusWriter) writeState(ctx context.Context, s StateStatus) error {
	res := w.Dynamic.Resource(ConfigurationStateGVR).Namespace(w.Namespace)
	u, err := res.Get(ctx, w.State, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": config.Group + "/v1beta1", "kind": "ConfigurationState",
			"metadata": map[string]any{"name": w.State, "namespace": w.Namespace, "labels": map[string]any{
				"app.kubernetes.io/name": "metallb", "app.kubernetes.io/part-of": manifests.PartOf,
			}},
		}}
		if u, err = res.Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create: %w", err)
		}
		err = nil
	}
	if err != nil {
		return err
	}
	if u != nil {
		got, _, _ := unstructured.NestedStringMap(u.Object, "status")
		want := map[string]string{"result": s.Result}
		if s.ErrorSummary != "" {
			want["errorSummary"] = s.ErrorSummary
		}
		if maps.Equal(got, want) {
			return nil
		}
	}
	// A merge patch: null removes the summary once valid again.
	st := map[string]any{"result": s.Result, "errorSummary": nil}
	if s.ErrorSummary != "" {
		st["errorSummary"] = s.ErrorSummary
	}
	return w.patch(ctx, ConfigurationStateGVR, w.State, st)
}

func (w *StatusWriter) patch(ctx context.Context, gvr schema.GroupVersionResource, name string, status any) error {
	body, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	_, err = w.Dynamic.Resource(gvr).Namespace(w.Namespace).Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{}, "status")
	return err
}

// finalize puts PoolFinalizer on the pools in force whose addresses are
// held and takes it off the others (a pool no longer in force, e.g. being
// deleted once nothing holds its addresses, is let go). It reports whether
// every change was made.
func (w *StatusWriter) finalize(ctx context.Context, pools map[string]PoolStatus, finalized map[string]bool) bool {
	ok := true
	want := map[string]bool{}
	for name, ps := range pools {
		want[name] = ps.AssignedIPv4+ps.AssignedIPv6 > 0
	}
	for name := range finalized {
		if _, in := want[name]; !in {
			want[name] = false
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if want[name] == finalized[name] {
			continue
		}
		has, err := w.setFinalizer(ctx, name, want[name])
		if err != nil {
			ok = false
			w.Log.Warn("cannot change an IPAddressPool's finalizer", "ipaddresspool", w.Namespace+"/"+name, "finalizer", PoolFinalizer, "error", err)
			continue
		}
		if has {
			finalized[name] = true
		} else {
			delete(finalized, name)
		}
	}
	return ok
}

// setFinalizer adds or removes PoolFinalizer on pool name, and says
// whether the pool carries it now. The patch names the version it read, so
// another finalizer written meanwhile is not lost.
func (w *StatusWriter) setFinalizer(ctx context.Context, name string, on bool) (bool, error) {
	res := w.Dynamic.Resource(ResourceGVRs[config.KindIPAddressPool]).Namespace(w.Namespace)
	u, err := res.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	fins := u.GetFinalizers()
	has := slices.Contains(fins, PoolFinalizer)
	switch {
	case has == on:
		return has, nil
	case on && u.GetDeletionTimestamp() != nil:
		return false, nil // none may be added to an object being deleted
	case on:
		fins = append(fins, PoolFinalizer)
	default:
		fins = slices.DeleteFunc(slices.Clone(fins), func(f string) bool { return f == PoolFinalizer })
	}
	var list any = fins
	if len(fins) == 0 {
		list = nil
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": u.GetResourceVersion(), "finalizers": list}})
	if err != nil {
		return has, err
	}
	if _, err := res.Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return has, err
	}
	return on, nil
}

// ReleasePools takes PoolFinalizer off the IPAddressPools of namespace
// that are being deleted (disable deletes the namespace and must never wait
// on the controller it removes). None served: nothing to do.
func ReleasePools(ctx context.Context, dyn dynamic.Interface, namespace string) error {
	list, err := dyn.Resource(ResourceGVRs[config.KindIPAddressPool]).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("list IPAddressPools in %s: %w", namespace, err)
	}
	w := &StatusWriter{Dynamic: dyn, Namespace: namespace}
	for _, u := range list.Items {
		if u.GetDeletionTimestamp() == nil || !slices.Contains(u.GetFinalizers(), PoolFinalizer) {
			continue
		}
		if _, err := w.setFinalizer(ctx, u.GetName(), false); err != nil {
			return fmt.Errorf("remove finalizer %s from IPAddressPool %s/%s: %w", PoolFinalizer, namespace, u.GetName(), err)
		}
	}
	return nil
}
