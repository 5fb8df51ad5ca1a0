package k8s

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// The components that write Events, as their source says; metallb status
// reads only Events from these.
const (
	ControllerComponent = "metallb-controller"
	SpeakerComponent    = "metallb-speaker"
)

// OurEvent says whether e was written by one of metallb's components about
// an object of e's own namespace. Anyone who may create Events in some
// namespace can write one naming any object of any other namespace, and any
// source: only the first check stops that.
func OurEvent(e *corev1.Event) bool {
	src := e.Source.Component
	if src == "" {
		src = e.ReportingController
	}
	return e.Namespace == e.InvolvedObject.Namespace && (src == ControllerComponent || src == SpeakerComponent)
}

// NewRecorder returns an EventRecorder that writes Events as component, and
// stops when ctx ends.
func NewRecorder(ctx context.Context, client kubernetes.Interface, component string) record.EventRecorder {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	go func() {
		<-ctx.Done()
		b.Shutdown()
	}()
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}
