package speaker

// ServiceL2Status objects: which node answers for which Service.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"

	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// The labels of a ServiceL2Status, as MetalLB sets them.
const (
	l2StatusNodeLabel      = "metallb.io/node"
	l2StatusServiceLabel   = "metallb.io/service-name"
	l2StatusNamespaceLabel = "metallb.io/service-namespace"
)

// l2StatusRetry is how soon a failed write is tried again, doubled on each
// failure in a row up to l2StatusMaxRetry (the kind not served: no API load
// that grows with the nodes).
const (
	l2StatusRetry    = 5 * time.Second
	l2StatusMaxRetry = 5 * time.Minute
)

// l2StatusClearTimeout bounds how long a speaker stopping for good waits for
// its ServiceL2Status objects to be deleted: the hand-off and the BGP
// sessions come first, and the process stops within a second.
const l2StatusClearTimeout = 300 * time.Millisecond

// l2Status is what one ServiceL2Status says: this node answers for the
// Service, from these interfaces (none listed: every one).
type l2Status struct {
	Namespace, Name string
	Interfaces      []string
}

// wantedL2Status is the ServiceL2Status this node should have, by Service
// key, from the announcements of a plan.
func wantedL2Status(as []announce.Announcement) map[string]l2Status {
	out := map[string]l2Status{}
	for _, a := range as {
		if a.Protocol != config.Layer2 {
			continue
		}
		ns, name, _ := strings.Cut(a.Service, "/")
		s := out[a.Service]
		s.Namespace, s.Name = ns, name
		for _, i := range a.Interfaces {
			if !slices.Contains(s.Interfaces, i) {
				s.Interfaces = append(s.Interfaces, i)
			}
		}
		slices.Sort(s.Interfaces)
		out[a.Service] = s
	}
	return out
}

func (a l2Status) equal(b l2Status) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && slices.Equal(a.Interfaces, b.Interfaces)
}

// l2StatusWriter keeps one ServiceL2Status in the namespace per Service
// this node announces by layer2, as MetalLB does (kubectl get
// servicel2statuses -n metallb-system). It runs in its own goroutine, so
// that a slow API server never delays an announcement: the loop tells it
// what changed, Service by Service, and it writes those only.
type l2StatusWriter struct {
	res  dynamic.ResourceInterface
	node string
	log  *slog.Logger
	wake chan struct{}
	done chan struct{} // nothing left to write (latest only)

	mu      sync.Mutex
	planned bool                // the loop has planned once: the wanted set is known
	want    map[string]l2Status // by Service key
	dirty   map[string]bool     // keys to write
}

func newL2StatusWriter(dyn dynamic.Interface, namespace, node string, log *slog.Logger) *l2StatusWriter {
	return &l2StatusWriter{
		res: dyn.Resource(k8s.ServiceL2StatusGVR).Namespace(namespace), node: node, log: log,
		wake: make(chan struct{}, 1), done: make(chan struct{}, 1), want: map[string]l2Status{}, dirty: map[string]bool{},
	}
}

func (w *l2StatusWriter) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// update sets what the ServiceL2Status of one Service should say (ok
// false: this node has none for it). Called by the loop.
func (w *l2StatusWriter) update(key string, st l2Status, ok bool) {
	w.mu.Lock()
	cur, had := w.want[key]
	if ok == had && (!ok || cur.equal(st)) {
		w.mu.Unlock()
		return
	}
	if ok {
		w.want[key] = st
	} else {
		delete(w.want, key)
	}
	w.dirty[key] = true
	w.mu.Unlock()
	w.poke()
}

// plannedOnce says that the loop has planned: from now on the objects an
// earlier run left and that nothing wants are deleted.
func (w *l2StatusWriter) plannedOnce() {
	w.mu.Lock()
	first := !w.planned
	w.planned = true
	w.mu.Unlock()
	if first {
		w.poke()
	}
}

// clear removes every ServiceL2Status of this node (a speaker that stops
// for good), waiting at most timeout.
func (w *l2StatusWriter) clear(timeout time.Duration) {
	select {
	case <-w.done:
	default:
	}
	w.mu.Lock()
	for key := range w.want {
		w.dirty[key] = true
	}
	clear(w.want)
	w.planned = true
	w.mu.Unlock()
	w.poke()
	select {
	case <-w.done:
	case <-time.After(timeout):
		w.log.Warn("the ServiceL2Status objects of this node are not all deleted", "waited", timeout)
	}
}

// take returns the keys to write with what each should say, or false when
// the loop has not planned yet.
func (w *l2StatusWriter) take(all map[string]string) ([]string, map[string]l2Status, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.planned {
		return nil, nil, false
	}
	for key := range all {
		w.dirty[key] = true
	}
	keys := slices.Sorted(maps.Keys(w.dirty))
	want := map[string]l2Status{}
	for _, key := range keys {
		if st, ok := w.want[key]; ok {
			want[key] = st
		}
	}
	clear(w.dirty)
	return keys, want, true
}

// giveBack marks keys to write again (a write failed).
func (w *l2StatusWriter) giveBack(keys []string) {
	w.mu.Lock()
	for _, key := range keys {
		w.dirty[key] = true
	}
	w.mu.Unlock()
}

// objectName names the ServiceL2Status of a Service on this node: the same
// name on every try, so that a create lost in a timeout is found again.
func (w *l2StatusWriter) objectName(key string) string {
	sum := sha256.Sum256([]byte(w.node + "\x00" + key))
	return "l2-" + hex.EncodeToString(sum[:8])
}

// run writes until ctx ends: first it learns the objects an earlier run of
// this node left, then it writes what the loop changes.
func (w *l2StatusWriter) run(ctx context.Context) {
	var have map[string]string // Service key → object name
	var haveStatus map[string]l2Status
	var adopted map[string]string // an earlier run's objects, checked once
	retry := time.NewTimer(0)
	defer retry.Stop()
	failing := ""
	delay := l2StatusRetry
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-retry.C:
		}
		err := func() error {
			if have == nil {
				h, hs, err := w.list(ctx)
				if err != nil {
					return err
				}
				have, haveStatus, adopted = h, hs, maps.Clone(h)
			}
			keys, want, ok := w.take(adopted)
			if !ok {
				return nil // nothing planned yet
			}
			adopted = nil
			rest, err := w.sync(ctx, keys, want, have, haveStatus)
			if err != nil {
				w.giveBack(rest)
			}
			return err
		}()
		if err != nil {
			if msg := err.Error(); msg != failing {
				w.log.Warn("ServiceL2Status not written, trying again", "error", err, "in", delay)
				failing = msg
			}
			retry.Reset(delay)
			delay = min(2*delay, l2StatusMaxRetry)
			continue
		}
		failing, delay = "", l2StatusRetry
		w.mu.Lock()
		idle := w.planned && len(w.dirty) == 0
		w.mu.Unlock()
		if idle {
			select {
			case w.done <- struct{}{}:
			default:
			}
		}
	}
}

// list returns the ServiceL2Status objects of this node.
func (w *l2StatusWriter) list(ctx context.Context) (map[string]string, map[string]l2Status, error) {
	have, status := map[string]string{}, map[string]l2Status{}
	sel := metav1.ListOptions{}
	if len(validation.IsValidLabelValue(w.node)) == 0 {
		sel.LabelSelector = l2StatusNodeLabel + "=" + w.node
	}
	list, err := w.res.List(ctx, sel)
	if err != nil {
		return nil, nil, fmt.Errorf("list ServiceL2Status: %w", err)
	}
	for _, o := range list.Items {
		st := readL2Status(&o)
		if node, _, _ := unstructured.NestedString(o.Object, "status", "node"); node != w.node {
			continue
		}
		key := st.Namespace + "/" + st.Name
		if _, dup := have[key]; dup {
			if err := w.delete(ctx, o.GetName()); err != nil {
				return nil, nil, err
			}
			continue
		}
		have[key], status[key] = o.GetName(), st
	}
	return have, status, nil
}

func readL2Status(o *unstructured.Unstructured) l2Status {
	var s l2Status
	s.Namespace, _, _ = unstructured.NestedString(o.Object, "status", "serviceNamespace")
	s.Name, _, _ = unstructured.NestedString(o.Object, "status", "serviceName")
	ifs, _, _ := unstructured.NestedSlice(o.Object, "status", "interfaces")
	for _, i := range ifs {
		if m, ok := i.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				s.Interfaces = append(s.Interfaces, n)
			}
		}
	}
	slices.Sort(s.Interfaces)
	return s
}

// sync creates, updates and deletes the objects of keys until they match
// want (a key absent from want: no object); have and status follow each
// write that succeeded. On an error it returns the keys not done.
func (w *l2StatusWriter) sync(ctx context.Context, keys []string, want map[string]l2Status, have map[string]string, status map[string]l2Status) ([]string, error) {
	for i, key := range keys {
		s, wanted := want[key]
		name, ok := have[key]
		switch {
		case !wanted && ok:
			if err := w.delete(ctx, name); err != nil {
				return keys[i:], err
			}
			delete(have, key)
			delete(status, key)
		case wanted && (!ok || !status[key].equal(s)):
			if !ok {
				name = w.objectName(key)
				if err := w.create(ctx, name, s); err != nil {
					return keys[i:], err
				}
				have[key] = name
			}
			if err := w.writeStatus(ctx, name, s); err != nil {
				return keys[i:], err
			}
			status[key] = s
		}
	}
	return nil, nil
}

func (w *l2StatusWriter) create(ctx context.Context, name string, s l2Status) error {
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": config.Group + "/v1beta1", "kind": "ServiceL2Status",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{},
	}}
	labels := map[string]string{}
	for k, v := range map[string]string{l2StatusNodeLabel: w.node, l2StatusServiceLabel: s.Name, l2StatusNamespaceLabel: s.Namespace} {
		if len(validation.IsValidLabelValue(v)) == 0 {
			labels[k] = v
		}
	}
	o.SetLabels(labels)
	_, err := w.res.Create(ctx, o, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ServiceL2Status %s for %s/%s: %w", name, s.Namespace, s.Name, err)
	}
	return nil
}

func (w *l2StatusWriter) writeStatus(ctx context.Context, name string, s l2Status) error {
	ifs := []any{}
	for _, i := range s.Interfaces {
		ifs = append(ifs, map[string]any{"name": i})
	}
	patch := map[string]any{"status": map[string]any{
		"node": w.node, "serviceName": s.Name, "serviceNamespace": s.Namespace, "interfaces": ifs,
	}}
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if _, err := w.res.Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("write the status of ServiceL2Status %s (%s/%s): %w", name, s.Namespace, s.Name, err)
	}
	return nil
}

func (w *l2StatusWriter) delete(ctx context.Context, name string) error {
	err := w.res.Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ServiceL2Status %s: %w", name, err)
	}
	return nil
}
