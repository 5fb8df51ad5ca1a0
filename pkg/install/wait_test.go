package install

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The rollout states of a single-replica controller upgrade, as the
// Deployment controller reports them.
func TestDeploymentAvailable(t *testing.T) {
	available := []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}
	for _, tc := range []struct {
		name   string
		gen    int64
		status appsv1.DeploymentStatus
		ok     bool
		why    string
	}{
		{"spec not seen yet", 2, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, Conditions: available},
			false, "waiting for the Deployment controller to see the new spec"},
		{"new pod created, old one still serving", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 1, AvailableReplicas: 1, Conditions: available},
			false, "1 old pod(s) still to stop"},
		{"new pod not ready", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 0},
			false, "0 of 1 pods available"},
		{"rolled out", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, Conditions: available},
			true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: tc.gen}, Status: tc.status}
			ok, why := deploymentAvailable(d)
			if diff := cmp.Diff([]any{tc.ok, tc.why}, []any{ok, why}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodsRunTheWorkloadsImage(t *testing.T) {
	pod := func(name, image string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "metallb-system",
			Labels: map[string]string{"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "speaker"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "speaker", Image: image}}}}
	}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Image: "localhost/microk8s-metallb:v2-bbb"}}}
	c := fake.NewClientset(pod("speaker-a", "localhost/microk8s-metallb:v2-bbb"), pod("speaker-b", "localhost/microk8s-metallb:v1-aaa"))
	ok, why := podsRun(context.Background(), c, "metallb-system", "speaker", spec)
	if diff := cmp.Diff([]any{false, "1 pod(s) still run an image other than localhost/microk8s-metallb:v2-bbb"}, []any{ok, why}); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := c.CoreV1().Pods("metallb-system").Delete(context.Background(), "speaker-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if ok, why := podsRun(context.Background(), c, "metallb-system", "speaker", spec); !ok {
		t.Errorf("all new: %s", why)
	}
}
