package integration

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/controller"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// TestSpeakerWithoutItsImageGetsAWarning: a speaker pod whose node lacks
// the image (a node that joined after enable, without a registry) gets a
// Warning Event from the controller, running with the shipped RBAC, that
// says the command that fixes it. Against the real API server.
func TestSpeakerWithoutItsImageGetsAWarning(t *testing.T) {
	env := cluster.Require(t)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	applyShippedRBAC(t, ns)
	const cfg = "address-pools:\n- {name: default, protocol: layer2, addresses: [192.0.2.0/30]}\n"
	setConfig(t, env.Client, ns, cfg)
	// The accepted copy enable creates (the controller may only update it).
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "config-accepted"},
		Data: map[string]string{"config": cfg}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runInProcess(t, controller.Options{Client: as(t, ns, "controller", ""), Log: testLogger(t), Metrics: metrics.New(), Namespace: ns})
	// Running: it assigns (and so stops cleanly when the test ends).
	createSvc(t, env.Client, ns, lbService("web"))
	waitIngress(t, env.Client, ns, "web", "192.0.2.0")

	pod, err := env.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "metallb-speaker-x1", Labels: map[string]string{"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "speaker"}},
		Spec:       corev1.PodSpec{NodeName: "node-d", Containers: []corev1.Container{{Name: "speaker", Image: "localhost/microk8s-metallb:v9", ImagePullPolicy: corev1.PullNever}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What the kubelet of a node without the image reports.
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "speaker", Image: "localhost/microk8s-metallb:v9",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: `Container image "localhost/microk8s-metallb:v9" is not present with pull policy of Never`}},
	}}}
	if _, err := env.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, env.Client, ns, "metallb-speaker-x1", controller.ReasonImageMissing,
		"the speaker of node node-d cannot start: the node lacks its image localhost/microk8s-metallb:v9 (ErrImageNeverPull); run the enable hook again")
}
