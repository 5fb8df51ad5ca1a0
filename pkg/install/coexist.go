package install

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/manifests"
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

// refuseForeign returns an error naming what another MetalLB (MicroK8s's
// core addon, or upstream's manifests) has in the cluster: installed
// beside it, both controllers would assign addresses and both speakers
// answer for them.
func (e *Enable) refuseForeign(ctx context.Context) error {
	if e.Client == nil {
		return nil
	}
	var found []string
	for _, w := range upstream {
		partOf, ok, err := workload(ctx, e.Client, e.Namespace, w.kind, w.name)
		if err != nil {
			return err
		}
		if ok && partOf != manifests.PartOf {
			found = append(found, fmt.Sprintf("%s %s/%s", w.kind, e.Namespace, w.name))
		}
	}
	_, err := e.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, UpstreamWebhook, metav1.GetOptions{})
	switch {
	case err == nil:
		found = append(found, "ValidatingWebhookConfiguration "+UpstreamWebhook)
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("read ValidatingWebhookConfiguration %s: %w", UpstreamWebhook, err)
	}
	if len(found) == 0 {
		return nil
	}
	return fmt.Errorf("another MetalLB is installed (%s), such as MicroK8s's core metallb addon: both would assign and announce the same addresses. "+
		"Disable it first (microk8s disable core/metallb; it deletes its IPAddressPools, so note their addresses first: microk8s kubectl -n %s get ipaddresspools -o yaml), then enable this addon with those ranges",
		strings.Join(found, ", "), e.Namespace)
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

// gone waits until the workload and its pods (foreground deletion) are gone.
func (e *Enable) gone(ctx context.Context, kind, name string) error {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		_, ok, err := workload(ctx, e.Client, e.Namespace, kind, name)
		if err != nil || !ok {
			return err
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
