package speaker

// ServiceL2Status and ServiceBGPStatus objects: which node announces which
// Service, by layer2 (from which interfaces) or by BGP (to which peers).

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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"

	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// The labels of a ServiceL2Status or ServiceBGPStatus, as MetalLB sets them.
const (
	statusNodeLabel      = "metallb.io/node"
	statusServiceLabel   = "metallb.io/service-name"
	statusNamespaceLabel = "metallb.io/service-namespace"
)

// statusKind is one of the two kinds: what it is called and where its list
// of interfaces or peers goes.
type statusKind struct {
	gvr    schema.GroupVersionResource
	kind   string
	prefix string // of the objects' names
	field  string // the list in status
	named  bool   // each item of the list is {name: item} (interfaces), else a string (peers)
}

var (
	l2Kind  = statusKind{gvr: k8s.ServiceL2StatusGVR, kind: "ServiceL2Status", prefix: "l2-", field: "interfaces", named: true}
	bgpKind = statusKind{gvr: k8s.ServiceBGPStatusGVR, kind: "ServiceBGPStatus", prefix: "bgp-", field: "peers"}
)

// statusRetry is how soon a failed write is tried again, doubled on each
// failure in a row up to statusMaxRetry (the kind not served: no API load
// that grows with the nodes).
const (
	statusRetry    = 5 * time.Second
	statusMaxRetry = 5 * time.Minute
)

// statusClearTimeout bounds how long a speaker stopping for good waits for
// its ServiceL2Status (and ServiceBGPStatus) objects to be deleted: the hand-off and the BGP
// sessions come first, and the process stops within a second.
const statusClearTimeout = 300 * time.Millisecond

// svcStatus is what one object says: this node announces the Service,
// from these interfaces (layer2; none listed: every one) or to these peers
// (BGP).
type svcStatus struct {
	Namespace, Name string
	Items           []string
}

// wantedL2Status is the ServiceL2Status this node should have, by Service
// key, from the announcements of a plan.
func wantedL2Status(as []announce.Announcement) map[string]svcStatus {
	out := map[string]svcStatus{}
	for _, a := range as {
		if a.Protocol != config.Layer2 {
			continue
		}
		ns, name, _ := strings.Cut(a.Service, "/")
		s := out[a.Service]
		s.Namespace, s.Name = ns, name
		for _, i := range a.Interfaces {
			if !slices.Contains(s.Items, i) {
				s.Items = append(s.Items, i)
			}
		}
		slices.Sort(s.Items)
		out[a.Service] = s
	}
	return out
}

func (a svcStatus) equal(b svcStatus) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && slices.Equal(a.Items, b.Items)
}

// statusWriter keeps one object of its kind in the namespace per Service
// this node announces by that protocol, as MetalLB does (kubectl get
// servicel2statuses -n metallb-system). It runs in its own goroutine, so
// that a slow API server never delays an announcement: the loop tells it
// what changed, Service by Service, and it writes those only.
type statusWriter struct {
	kind statusKind
	res  dynamic.ResourceInterface
	node string
	log  *slog.Logger
	wake chan struct{}
	done chan struct{} // nothing left to write (latest only)

	mu      sync.Mutex
	planned bool                 // the loop has planned once: the wanted set is known
	want    map[string]svcStatus // by Service key
	dirty   map[string]bool      // keys to write
}

func newStatusWriter(kind statusKind, dyn dynamic.Interface, namespace, node string, log *slog.Logger) *statusWriter {
	return &statusWriter{
		kind: kind, res: dyn.Resource(kind.gvr).Namespace(namespace), node: node, log: log,
		wake: make(chan struct{}, 1), done: make(chan struct{}, 1), want: map[string]svcStatus{}, dirty: map[string]bool{},
	}
}

func (w *statusWriter) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// update sets what the object of one Service should say (ok
// false: this node has none for it). Called by the loop.
func (w *statusWriter) update(key string, st svcStatus, ok bool) {
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
func (w *statusWriter) plannedOnce() {
	w.mu.Lock()
	first := !w.planned
	w.planned = true
	w.mu.Unlock()
	if first {
		w.poke()
	}
}

// clear removes every object of this node (a speaker that stops
// for good), waiting at most timeout.
func (w *statusWriter) clear(timeout time.Duration) {
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
		w.log.Warn("the "+w.kind.kind+" objects of this node are not all deleted", "waited", timeout)
	}
}

// take returns the keys to write with what each should say, or false when
// the loop has not planned yet.
func (w *statusWriter) take(all map[string]string) ([]string, map[string]svcStatus, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.planned {
		return nil, nil, false
	}
	for key := range all {
		w.dirty[key] = true
	}
	keys := slices.Sorted(maps.Keys(w.dirty))
	want := map[string]svcStatus{}
	for _, key := range keys {
		if st, ok := w.want[key]; ok {
			want[key] = st
		}
	}
	clear(w.dirty)
	return keys, want, true
}

// giveBack marks keys to write again (a write failed).
func (w *statusWriter) giveBack(keys []string) {
	w.mu.Lock()
	for _, key := range keys {
		w.dirty[key] = true
	}
	w.mu.Unlock()
}

// objectName names the object of a Service on this node: the same
// name on every try, so that a create lost in a timeout is found again.
func (w *statusWriter) objectName(key string) string {
	sum := sha256.Sum256([]byte(w.node + "\x00" + key))
	return w.kind.prefix + hex.EncodeToString(sum[:8])
}

// run writes until ctx ends: first it learns the objects an earlier run of
// this node left, then it writes what the loop changes.
func (w *statusWriter) run(ctx context.Context) {
	var have map[string]string // Service key → object name
	var haveStatus map[string]svcStatus
	var adopted map[string]string // an earlier run's objects, checked once
	retry := time.NewTimer(0)
	defer retry.Stop()
	failing := ""
	delay := statusRetry
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
				w.log.Warn(w.kind.kind+" not written, trying again", "error", err, "in", delay)
				failing = msg
			}
			retry.Reset(delay)
			delay = min(2*delay, statusMaxRetry)
			continue
		}
		failing, delay = "", statusRetry
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

// list returns the objects of this node.
func (w *statusWriter) list(ctx context.Context) (map[string]string, map[string]svcStatus, error) {
	have, status := map[string]string{}, map[string]svcStatus{}
	sel := metav1.ListOptions{}
	if len(validation.IsValidLabelValue(w.node)) == 0 {
		sel.LabelSelector = statusNodeLabel + "=" + w.node
	}
	list, err := w.res.List(ctx, sel)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", w.kind.kind, err)
	}
	for _, o := range list.Items {
		st := w.kind.read(&o)
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

func (k statusKind) read(o *unstructured.Unstructured) svcStatus {
	var s svcStatus
	s.Namespace, _, _ = unstructured.NestedString(o.Object, "status", "serviceNamespace")
	s.Name, _, _ = unstructured.NestedString(o.Object, "status", "serviceName")
	items, _, _ := unstructured.NestedSlice(o.Object, "status", k.field)
	for _, i := range items {
		if m, ok := i.(map[string]any); ok && k.named {
			i = m["name"]
		}
		if n, ok := i.(string); ok {
			s.Items = append(s.Items, n)
		}
	}
	slices.Sort(s.Items)
	return s
}

// sync creates, updates and deletes the objects of keys until they match
// want (a key absent from want: no object); have and status follow each
// write that succeeded. On an error it returns the keys not done.
func (w *statusWriter) sync(ctx context.Context, keys []string, want map[string]svcStatus, have map[string]string, status map[string]svcStatus) ([]string, error) {
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

func (w *statusWriter) create(ctx context.Context, name string, s svcStatus) error {
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": config.Group + "/v1beta1", "kind": w.kind.kind,
		"metadata": map[string]any{"name": name}, "spec": map[string]any{},
	}}
	labels := map[string]string{}
	for k, v := range map[string]string{statusNodeLabel: w.node, statusServiceLabel: s.Name, statusNamespaceLabel: s.Namespace} {
		if len(validation.IsValidLabelValue(v)) == 0 {
			labels[k] = v
		}
	}
	o.SetLabels(labels)
	_, err := w.res.Create(ctx, o, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s %s for %s/%s: %w", w.kind.kind, name, s.Namespace, s.Name, err)
	}
	return nil
}

func (w *statusWriter) writeStatus(ctx context.Context, name string, s svcStatus) error {
	items := []any{}
	for _, i := range s.Items {
		if w.kind.named {
			items = append(items, map[string]any{"name": i})
		} else {
			items = append(items, i)
		}
	}
	patch := map[string]any{"status": map[string]any{
		"node": w.node, "serviceName": s.Name, "serviceNamespace": s.Namespace, w.kind.field: items,
	}}
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if _, err := w.res.Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("write the status of %s %s (%s/%s): %w", w.kind.kind, name, s.Namespace, s.Name, err)
	}
	return nil
}

func (w *statusWriter) delete(ctx context.Context, name string) error {
	err := w.res.Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s: %w", w.kind.kind, name, err)
	}
	return nil
}
