package install

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/config"
)

// UpstreamWebhook is the webhook configuration upstream MetalLB (and so
// MicroK8s's core metallb addon) creates.
const UpstreamWebhook = "metallb-webhook-configuration"

// upstream are the workloads under upstream MetalLB's names: another
// MetalLB's when they lack our part-of label, an earlier version of ours
// (which used those names) when they carry it.
var upstream = []struct{ kind, name string }{{"Deployment", "controller"}, {"DaemonSet", "speaker"}}

// workload reads the part-of label of one of upstream's workloads; found
// is false when it does not exist.
func workload(ctx context.Context, client kubernetes.Interface, namespace, kind, name string) (partOf string, found bool, err error) {
	var meta metav1.Object
	switch kind {
	case "Deployment":
		meta, err = client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	default:
		meta, err = client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s %s/%s: %w", kind, namespace, name, err)
	}
	return meta.GetLabels()["app.kubernetes.io/part-of"], true, nil
}

// foreignObjects are what upstream MetalLB's manifests (MicroK8s's core
// addon) and its Helm chart create besides the metallb.io resources and
// their CRDs: what a takeover removes, each only when it lacks our part-of
// label. The webhook first (left without its Service it refuses every edit
// of a metallb.io resource), the workloads next (waited for: two speakers
// would answer for the same addresses), then what they used. Names with
// "%s" take the namespace.
var foreignObjects = []struct{ kind, name string }{
	{"ValidatingWebhookConfiguration", UpstreamWebhook},
	{"Deployment", "controller"}, {"DaemonSet", "speaker"},
	{"Deployment", ControllerName}, {"DaemonSet", SpeakerName},
	{"Service", "metallb-webhook-service"}, {"Secret", "metallb-webhook-cert"}, {"Secret", "webhook-server-cert"},
	{"ConfigMap", "metallb-excludel2"},
	{"RoleBinding", "controller"}, {"RoleBinding", "pod-lister"}, {"RoleBinding", "speaker"},
	{"Role", "controller"}, {"Role", "pod-lister"}, {"Role", "speaker"},
	{"ClusterRoleBinding", "%s:controller"}, {"ClusterRoleBinding", "%s:speaker"},
	{"ClusterRole", "%s:controller"}, {"ClusterRole", "%s:speaker"},
	{"ServiceAccount", "controller"}, {"ServiceAccount", "speaker"},
}

// foreignObject is one of another MetalLB's objects in the cluster.
type foreignObject struct {
	kind, name string
	workload   bool // a Deployment or DaemonSet: waited for until gone
}

func (o foreignObject) String() string { return o.kind + " " + o.name }

// foreign finds another MetalLB's objects (foreignObjects without our
// label). It is installed when one of them is a workload or its webhook;
// the rest alone are leftovers, removed with it.
func (e *Enable) foreign(ctx context.Context) (found []foreignObject, installed bool, err error) {
	if e.Client == nil || e.Dyn == nil {
		return nil, false, nil
	}
	for _, f := range foreignObjects {
		name := f.name
		if strings.Contains(name, "%s") {
			name = fmt.Sprintf(name, e.Namespace)
		}
		res := resources[f.kind]
		ri := dynamic.ResourceInterface(e.Dyn.Resource(res.gvr))
		shown := name
		if res.namespaced {
			ri = e.Dyn.Resource(res.gvr).Namespace(e.Namespace)
			shown = e.Namespace + "/" + name
		}
		u, err := ri.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("read %s %s: %w", f.kind, shown, err)
		}
		if u.GetLabels()["app.kubernetes.io/part-of"] == manifests.PartOf {
			continue
		}
		w := f.kind == "Deployment" || f.kind == "DaemonSet"
		installed = installed || w || f.kind == "ValidatingWebhookConfiguration"
		found = append(found, foreignObject{kind: f.kind, name: shown, workload: w})
	}
	return found, installed, nil
}

// announceTakeover says, before anything is asked or checked, that another
// MetalLB is installed and what enable will do with it.
func (e *Enable) announceTakeover(ctx context.Context) error {
	found, installed, err := e.foreign(ctx)
	if err != nil || len(found) == 0 {
		return err
	}
	e.takeover = found
	if !installed {
		e.report.note("another MetalLB's leftovers are in the cluster (%s): enable removes them", joinObjects(found))
		return nil
	}
	var main []string
	for _, f := range found {
		if f.workload || f.kind == "ValidatingWebhookConfiguration" {
			main = append(main, f.String())
		}
	}
	e.report.step("another MetalLB is installed (%s), such as MicroK8s's core metallb addon: enable takes it over. "+
		"Its metallb.io resources (pools, advertisements, peers) stay in force, and the Secrets they name; its workloads, webhook and RBAC are removed; "+
		"Services keep their addresses (not announced for the seconds between its speakers stopping and ours starting).",
		strings.Join(main, ", "))
	return nil
}

// takeOver removes the other MetalLB's objects found by announceTakeover,
// in order, waiting until its workloads are gone, and turns its CRDs'
// conversion webhook (its controller served it) into none.
func (e *Enable) takeOver(ctx context.Context) error {
	if len(e.takeover) == 0 {
		return nil
	}
	if e.DryRun {
		e.report.note("another MetalLB's objects would be removed first (%s): applying this beside them fails or runs two MetalLBs", joinObjects(e.takeover))
		return nil
	}
	for _, f := range e.takeover {
		kind, name := f.kind, f.name
		res := resources[kind]
		ri := dynamic.ResourceInterface(e.Dyn.Resource(res.gvr))
		if res.namespaced {
			ri = e.Dyn.Resource(res.gvr).Namespace(e.Namespace)
			name = strings.TrimPrefix(name, e.Namespace+"/")
		}
		fg := metav1.DeletePropagationForeground
		if err := ri.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("take over: delete %s: %w", f, err)
		}
		if f.workload {
			if err := e.gone(ctx, kind, name); err != nil {
				return err
			}
		}
		e.report.step("%s deleted (another MetalLB's)", f)
	}
	return e.ownCRDs(ctx)
}

// ownCRDs sets the conversion of the metallb.io CRDs another MetalLB
// installed to none: its webhook is gone, and the versions convert by
// renaming (as ours do). The apply that follows then takes them over.
func (e *Enable) ownCRDs(ctx context.Context) error {
	ri := e.Dyn.Resource(resources["CustomResourceDefinition"].gvr)
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("take over: list CustomResourceDefinitions: %w", err)
	}
	patch := []byte(`{"spec":{"conversion":{"strategy":"None","webhook":null}}}`)
	for _, u := range list.Items {
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		strategy, _, _ := unstructured.NestedString(u.Object, "spec", "conversion", "strategy")
		if group != config.Group || strategy != "Webhook" {
			continue
		}
		if _, err := ri.Patch(ctx, u.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
			return fmt.Errorf("take over: CustomResourceDefinition %s: drop its conversion webhook: %w", u.GetName(), err)
		}
		e.report.step("CustomResourceDefinition %s: its conversion webhook (the other MetalLB's) is no longer called", u.GetName())
	}
	return nil
}

func joinObjects(fs []foreignObject) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.String()
	}
	return strings.Join(s, ", ")
}

// retireRenamed deletes the workloads an earlier version of ours ran under
// upstream's names, and waits until they are gone, before their successors
// are applied: two speakers on one node would share its ports.
func (e *Enable) retireRenamed(ctx context.Context) error {
	if e.Client == nil {
		return nil
	}
	for _, w := range upstream {
		partOf, ok, err := workload(ctx, e.Client, e.Namespace, w.kind, w.name)
		if err != nil || !ok || partOf != manifests.PartOf {
			if err != nil {
				return err
			}
			continue
		}
		if e.DryRun {
			e.report.note("%s %s/%s is an earlier version's: delete it before applying this (microk8s kubectl -n %s delete %s %s), or two of them run",
				w.kind, e.Namespace, w.name, e.Namespace, strings.ToLower(w.kind), w.name)
			continue
		}
		e.report.step("%s %s/%s is an earlier version's: deleting it for its successor", w.kind, e.Namespace, w.name)
		fg := metav1.DeletePropagationForeground
		del := metav1.DeleteOptions{PropagationPolicy: &fg}
		if w.kind == "Deployment" {
			err = e.Client.AppsV1().Deployments(e.Namespace).Delete(ctx, w.name, del)
		} else {
			err = e.Client.AppsV1().DaemonSets(e.Namespace).Delete(ctx, w.name, del)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s %s/%s: %w", w.kind, e.Namespace, w.name, err)
		}
		if err := e.gone(ctx, w.kind, w.name); err != nil {
			return err
		}
	}
	return nil
}

// gone waits until the workload and its pods (foreground deletion) are
// gone: until the API server no longer has the object.
func (e *Enable) gone(ctx context.Context, kind, name string) error {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	ri := e.Dyn.Resource(resources[kind].gvr).Namespace(e.Namespace)
	for {
		_, err := ri.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s %s/%s: %w", kind, e.Namespace, name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %s/%s is still being deleted after %s: see microk8s kubectl -n %s describe %s %s", kind, e.Namespace, name, timeout, e.Namespace, strings.ToLower(kind), name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
