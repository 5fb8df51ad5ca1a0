package controller

// The speakers that cannot start: a Warning Event on their pod.

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/microk8s-metallb/metallb/pkg/status"
)

// ReasonImageMissing (on a speaker's pod): its node lacks the image and
// cannot pull it, typically a node that joined after enable.
const ReasonImageMissing = "SpeakerImageMissing"

// speakerSelector selects the speakers' pods.
const speakerSelector = "app.kubernetes.io/component=speaker"

// watchSpeakers raises a Warning Event on each speaker pod of the
// namespace whose container waits for an image its node lacks, once per
// pod and reason, saying the command that fixes it (what metallb status
// says too). It runs until ctx ends.
func (c *Controller) watchSpeakers(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(c.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = speakerSelector }))
	raised := map[string]string{} // pod UID → the reason raised; the informer's one handler goroutine owns it
	check := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		for _, cs := range pod.Status.ContainerStatuses {
			w := cs.State.Waiting
			if w == nil || !status.ImageMissing(w.Reason) {
				continue
			}
			if raised[string(pod.UID)] == w.Reason {
				return
			}
			raised[string(pod.UID)] = w.Reason
			image := cs.Image
			for _, ct := range pod.Spec.Containers {
				if ct.Name == cs.Name {
					image = ct.Image
				}
			}
			c.recorder.Event(pod, corev1.EventTypeWarning, ReasonImageMissing, status.ImageAdvice(pod.Spec.NodeName, image, w.Reason))
			return
		}
	}
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    check,
		UpdateFunc: func(_, cur any) { check(cur) },
		DeleteFunc: func(obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				delete(raised, string(pod.UID))
			}
		},
	}); err != nil {
		c.log.Error("watch the speakers' pods", "error", err)
		return
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}
