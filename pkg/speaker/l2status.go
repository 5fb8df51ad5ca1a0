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
// that a slow API server never delays an announcement: the loop hands it
// the latest wanted set, older ones dropped, and it writes the difference
// only.
type l2StatusWriter struct {
	res  dynamic.ResourceInterface
	node string
	log  *slog.Logger
	want chan map[string]l2Status // latest only
	done chan struct{}            // a wanted set written (latest only)
	sent map[string]l2Status      // the last set handed over (the loop's)
}

func newL2StatusWriter(dyn dynamic.Interface, namespace, node string, log *slog.Logger) *l2StatusWriter {
	return &l2StatusWriter{
		res: dyn.Resource(k8s.ServiceL2StatusGVR).Namespace(namespace), node: node, log: log,
		want: make(chan map[string]l2Status, 1), done: make(chan struct{}, 1),
	}
}

// set hands the writer a new wanted set (called by the loop), when it
// differs from the last.
func (w *l2StatusWriter) set(want map[string]l2Status) {
	if w.sent != nil && maps.EqualFunc(w.sent, want, l2Status.equal) {
		return
	}
	w.sent = want
	select {
	case <-w.want:
	default:
	}
	w.want <- want
}

// clear removes every ServiceL2Status of this node (a speaker that stops
// for good), waiting at most timeout.
func (w *l2StatusWriter) clear(timeout time.Duration) {
	select {
	case <-w.done:
	default:
	}
	w.sent = nil
	w.set(map[string]l2Status{})
	select {
	case <-w.done:
	case <-time.After(timeout):
		w.log.Warn("the ServiceL2Status objects of this node are not all deleted", "waited", timeout)
	}
}

// objectName names the ServiceL2Status of a Service on this node: the same
// name on every try, so that a create lost in a timeout is found again.
func (w *l2StatusWriter) objectName(key string) string {
	sum := sha256.Sum256([]byte(w.node + "\x00" + key))
	return "l2-" + hex.EncodeToString(sum[:8])
}

// run writes until ctx ends: first it learns the objects an earlier run of
// this node left, then it makes them match each wanted set.
func (w *l2StatusWriter) run(ctx context.Context) {
	var have map[string]string // Service key → object name
	var haveStatus map[string]l2Status
	var want map[string]l2Status
	retry := time.NewTimer(0)
	defer retry.Stop()
	failing := ""
	delay := l2StatusRetry
	for {
		select {
		case <-ctx.Done():
			return
		case want = <-w.want:
		case <-retry.C:
		}
		err := func() error {
			if have == nil {
				h, hs, err := w.list(ctx)
				if err != nil {
					return err
				}
				have, haveStatus = h, hs
			}
			if want == nil {
				return nil // nothing planned yet
			}
			return w.sync(ctx, want, have, haveStatus)
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
		if want != nil {
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

// sync creates, updates and deletes until have matches want; have and
// status follow each write that succeeded.
func (w *l2StatusWriter) sync(ctx context.Context, want map[string]l2Status, have map[string]string, status map[string]l2Status) error {
	for _, key := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[key]; ok {
			continue
		}
		if err := w.delete(ctx, have[key]); err != nil {
			return err
		}
		delete(have, key)
		delete(status, key)
	}
	for _, key := range slices.Sorted(maps.Keys(want)) {
		s := want[key]
		name, ok := have[key]
		if ok && status[key].equal(s) {
			continue
		}
		if !ok {
			name = w.objectName(key)
			if err := w.create(ctx, name, s); err != nil {
				return err
			}
			have[key] = name
		}
		if err := w.writeStatus(ctx, name, s); err != nil {
			return err
		}
		status[key] = s
	}
	return nil
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
