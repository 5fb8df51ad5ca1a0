package install

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// PartOfSelector selects every object the installer creates.
var PartOfSelector = "app.kubernetes.io/part-of=" + manifests.PartOf

// Disable deletes everything enable created: the cluster-scoped RBAC and
// admission policy objects (by label), then the namespace with all it
// holds, then (when dyn is not nil) the metallb.io CustomResourceDefinitions
// enable installed, once the namespace and the resources in it are gone.
// Objects already gone are fine, so it also cleans up after a half-finished
// enable. It waits until the namespace and the definitions are gone, or
// timeout.
func Disable(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, namespace string, timeout time.Duration, progress Progress) error {
	sel := metav1.ListOptions{LabelSelector: PartOfSelector}
	rbac := client.RbacV1()
	if err := rbac.ClusterRoleBindings().DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ClusterRoleBindings (%s): %w", PartOfSelector, err)
	}
	if err := rbac.ClusterRoles().DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ClusterRoles (%s): %w", PartOfSelector, err)
	}
	adm := client.AdmissionregistrationV1()
	if err := adm.ValidatingWebhookConfigurations().DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ValidatingWebhookConfigurations (%s): %w", PartOfSelector, err)
	}
	if err := adm.ValidatingAdmissionPolicyBindings().DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ValidatingAdmissionPolicyBindings (%s): %w", PartOfSelector, err)
	}
	if err := adm.ValidatingAdmissionPolicies().DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ValidatingAdmissionPolicies (%s): %w", PartOfSelector, err)
	}
	w := waiter{start: time.Now(), timeout: timeout, progress: progress}
	bg := metav1.DeletePropagationForeground
	err := client.CoreV1().Namespaces().Delete(ctx, namespace, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", namespace, err)
	}
	if err == nil {
		gone := func() (bool, error) {
			if dyn != nil {
				// The pools' finalizer waits on the controller, which goes
				// first; a failure is tried again on the next poll.
				_ = k8s.ReleasePools(ctx, dyn, namespace)
			}
			_, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, nil
		}
		if err := w.until(ctx, "namespace "+namespace, gone); err != nil {
			return fmt.Errorf("namespace %s is still terminating after %s: something holds it (a finalizer, or pods that do not stop); see: microk8s kubectl get namespace %s -o yaml", namespace, timeout, namespace)
		}
	}
	if dyn == nil {
		return nil
	}
	crds := dyn.Resource(resources["CustomResourceDefinition"].gvr)
	if err := crds.DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete CustomResourceDefinitions (%s): %w", PartOfSelector, err)
	}
	gone := func() (bool, error) {
		list, err := crds.List(ctx, sel)
		if err != nil {
			return false, fmt.Errorf("list CustomResourceDefinitions (%s): %w", PartOfSelector, err)
		}
		return len(list.Items) == 0, nil
	}
	if err := w.until(ctx, "the metallb.io CustomResourceDefinitions", gone); err != nil {
		return fmt.Errorf("%w; see: microk8s kubectl get crd -l %s -o yaml", err, PartOfSelector)
	}
	return nil
}

// waiter polls a condition until it holds or the time since start passes
// timeout, reporting progress.
type waiter struct {
	start    time.Time
	timeout  time.Duration
	progress Progress
}

func (w waiter) until(ctx context.Context, what string, done func() (bool, error)) error {
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Since(w.start) > w.timeout {
			return fmt.Errorf("%s still there after %s", what, w.timeout)
		}
		if w.progress != nil {
			w.progress(fmt.Sprintf("waiting for %s to go (%s)", what, time.Since(w.start).Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
