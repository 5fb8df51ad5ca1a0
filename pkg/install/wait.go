package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// The two workloads enable waits for. Their names are not upstream's
// (controller, speaker): beside MicroK8s's core metallb, whose status check
// is the substring "pod/speaker", our pods must not read as core's.
const (
	ControllerName = "metallb-controller"
	SpeakerName    = "metallb-speaker"
)

// component is the app.kubernetes.io/component label of a workload's pods.
var component = map[string]string{ControllerName: "controller", SpeakerName: "speaker"}

// Progress receives one line about what is being waited for; a terminal
// rewrites it in place, a log appends it.
type Progress func(line string)

// NewProgress prints progress lines to out: on a terminal each "waiting"
// line overwrites the previous one and any other line stays; elsewhere a
// "waiting" line is printed at most every 5 s, any other line always.
func NewProgress(out io.Writer, tty bool) Progress {
	var last time.Time
	var lastLen int
	return func(line string) {
		waiting := strings.HasPrefix(line, "waiting")
		if tty {
			fmt.Fprintf(out, "\r%s%s", line, strings.Repeat(" ", max(0, lastLen-len(line))))
			lastLen = len(line)
			if !waiting {
				fmt.Fprintln(out) // the last line stays
			}
			return
		}
		if time.Since(last) >= 5*time.Second || !waiting {
			fmt.Fprintln(out, line)
			last = time.Now()
		}
	}
}

// deploymentAvailable says whether d has rolled out and is Available, and
// if not, what is missing.
func deploymentAvailable(d *appsv1.Deployment) (bool, string) {
	if d.Status.ObservedGeneration < d.Generation {
		return false, "waiting for the Deployment controller to see the new spec"
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if d.Status.UpdatedReplicas < want {
		return false, fmt.Sprintf("%d of %d pods updated", d.Status.UpdatedReplicas, want)
	}
	// Until the old pods are gone, "available" may count them: the new
	// image is running only when every pod is an updated one.
	if old := d.Status.Replicas - d.Status.UpdatedReplicas; old > 0 {
		return false, fmt.Sprintf("%d old pod(s) still to stop", old)
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.AvailableReplicas >= want {
			return true, ""
		}
	}
	return false, fmt.Sprintf("%d of %d pods available", d.Status.AvailableReplicas, want)
}

// daemonSetRolledOut says whether every scheduled speaker runs the current
// spec and is available.
func daemonSetRolledOut(ds *appsv1.DaemonSet) (bool, string) {
	s := ds.Status
	if s.ObservedGeneration < ds.Generation {
		return false, "waiting for the DaemonSet controller to see the new spec"
	}
	if s.UpdatedNumberScheduled < s.DesiredNumberScheduled {
		return false, fmt.Sprintf("%d of %d nodes updated", s.UpdatedNumberScheduled, s.DesiredNumberScheduled)
	}
	if s.NumberAvailable < s.DesiredNumberScheduled {
		return false, fmt.Sprintf("%d of %d nodes available", s.NumberAvailable, s.DesiredNumberScheduled)
	}
	return true, ""
}

// Wait polls until the controller Deployment is Available and the speaker
// DaemonSet has rolled out, or timeout passes; the error then names the
// pods that are stuck and their last Events.
func Wait(ctx context.Context, client kubernetes.Interface, namespace string, timeout time.Duration, progress Progress) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var ctrlOK, spkOK bool
	var ctrlWhy, spkWhy string
	for {
		if d, err := client.AppsV1().Deployments(namespace).Get(ctx, ControllerName, metav1.GetOptions{}); err == nil {
			ctrlOK, ctrlWhy = deploymentAvailable(d)
			if ctrlOK {
				ctrlOK, ctrlWhy = podsRun(ctx, client, namespace, component[ControllerName], d.Spec.Template.Spec)
			}
		} else if ctx.Err() == nil {
			ctrlOK, ctrlWhy = false, err.Error()
		}
		if ds, err := client.AppsV1().DaemonSets(namespace).Get(ctx, SpeakerName, metav1.GetOptions{}); err == nil {
			spkOK, spkWhy = daemonSetRolledOut(ds)
			if spkOK {
				spkOK, spkWhy = podsRun(ctx, client, namespace, component[SpeakerName], ds.Spec.Template.Spec)
			}
		} else if ctx.Err() == nil {
			spkOK, spkWhy = false, err.Error()
		}
		if ctrlOK && spkOK {
			if progress != nil {
				progress(fmt.Sprintf("controller Available, speaker rolled out (%s)", time.Since(start).Round(100*time.Millisecond)))
			}
			return nil
		}
		if progress != nil {
			progress(fmt.Sprintf("waiting: controller %s, speaker %s (%s of %s)",
				state(ctrlOK, ctrlWhy), state(spkOK, spkWhy), time.Since(start).Round(time.Second), timeout))
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return stuck(context.Background(), client, namespace, timeout, ctrlOK, spkOK, ctrlWhy, spkWhy)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// podsRun checks that every pod of the component that is not on its way
// out runs the workload's image: after an upgrade, the new one.
func podsRun(ctx context.Context, client kubernetes.Interface, namespace, component string, spec corev1.PodSpec) (bool, string) {
	sel := labels.Set{"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": component}.String()
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil || len(spec.Containers) == 0 {
		return true, "" // the workload's own status said it rolled out
	}
	want := spec.Containers[0].Image
	old := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && len(p.Spec.Containers) > 0 && p.Spec.Containers[0].Image != want {
			old++
		}
	}
	if old > 0 {
		return false, fmt.Sprintf("%d pod(s) still run an image other than %s", old, want)
	}
	return true, ""
}

func state(ok bool, why string) string {
	if ok {
		return "ready"
	}
	return why
}

// stuck explains a timeout: which workload is not ready, its pods that are
// not ready with their phase and last Events, and what to run next.
func stuck(ctx context.Context, client kubernetes.Interface, namespace string, timeout time.Duration, ctrlOK, spkOK bool, ctrlWhy, spkWhy string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "metallb did not become ready within %s", timeout)
	for _, w := range []struct {
		ok        bool
		name, why string
	}{{ctrlOK, ControllerName, ctrlWhy}, {spkOK, SpeakerName, spkWhy}} {
		if w.ok {
			continue
		}
		fmt.Fprintf(&b, "\n  %s: %s", w.name, w.why)
		sel := labels.Set{"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": component[w.name]}.String()
		pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			fmt.Fprintf(&b, "\n    (cannot list its pods: %v)", err)
			continue
		}
		if len(pods.Items) == 0 {
			fmt.Fprintf(&b, "\n    no %s pod exists yet: look at the workload's Events with\n    microk8s kubectl -n %s describe %s %s",
				w.name, namespace, map[string]string{ControllerName: "deployment", SpeakerName: "daemonset"}[w.name], w.name)
			continue
		}
		for _, p := range pods.Items {
			if podReady(&p) {
				continue
			}
			fmt.Fprintf(&b, "\n    pod %s", p.Name)
			if p.Spec.NodeName != "" {
				fmt.Fprintf(&b, " on node %s", p.Spec.NodeName)
			}
			fmt.Fprintf(&b, " is %s%s", p.Status.Phase, waitingReason(&p))
			evs, err := client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
				FieldSelector: fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": p.Name}.String(),
			})
			if err == nil && len(evs.Items) > 0 {
				items := evs.Items
				slices.SortFunc(items, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
				if len(items) > 3 {
					items = items[len(items)-3:]
				}
				b.WriteString("; last events:")
				for _, e := range items {
					fmt.Fprintf(&b, "\n      %s %s: %s", e.Type, e.Reason, strings.TrimSpace(e.Message))
				}
			}
			fmt.Fprintf(&b, "\n    see: microk8s kubectl -n %s describe pod %s", namespace, p.Name)
		}
	}
	return errors.New(b.String())
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitingReason(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return " (" + w.Reason + ")"
		}
	}
	return ""
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
