package install

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/manifests"
)

// PartOfSelector selects every object the installer creates.
var PartOfSelector = "app.kubernetes.io/part-of=" + manifests.PartOf

// Disable deletes everything enable created: the cluster-scoped RBAC and
// admission policy objects (by label), then the namespace with all it
// holds. Objects already gone are fine, so it also cleans up after a
// half-finished enable. It waits until the namespace is gone, or timeout.
func Disable(ctx context.Context, client kubernetes.Interface, namespace string, timeout time.Duration, progress Progress) error {
	sel := metav1.ListOptions{LabelSelector: PartOfSelector}
	rbac := client.RbacV1()
	if err := rbac.ClusterRoleBindings().DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ClusterRoleBindings (%s): %w", PartOfSelector, err)
	}
	if err := rbac.ClusterRoles().DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ClusterRoles (%s): %w", PartOfSelector, err)
	}
	adm := client.AdmissionregistrationV1()
	if err := adm.ValidatingAdmissionPolicyBindings().DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ValidatingAdmissionPolicyBindings (%s): %w", PartOfSelector, err)
	}
	if err := adm.ValidatingAdmissionPolicies().DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ValidatingAdmissionPolicies (%s): %w", PartOfSelector, err)
	}
	bg := metav1.DeletePropagationForeground
	err := client.CoreV1().Namespaces().Delete(ctx, namespace, metav1.DeleteOptions{PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete namespace %s: %w", namespace, err)
	}
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		_, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s is still terminating after %s: something holds it (a finalizer, or pods that do not stop); see: microk8s kubectl get namespace %s -o yaml", namespace, timeout, namespace)
		}
		if progress != nil {
			progress(fmt.Sprintf("waiting for namespace %s to go (%s)", namespace, time.Since(start).Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
