package install

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
