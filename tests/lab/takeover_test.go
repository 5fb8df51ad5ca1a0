package lab

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/install"
)

// coreAddon installs what MicroK8s's core metallb addon leaves in a
// cluster: the metallb.io CRDs (bgppeers converted by its webhook), its
// workloads under upstream's names, its webhook (failurePolicy Fail, and
// no pod behind its Service), its RBAC, and the pool and advertisement the
// addon creates from the range it was given.
func coreAddon(t *testing.T, sc *snapCluster, dyn dynamic.Interface) {
	t.Helper()
	ctx := context.Background()
	ns := "metallb-system"
	b, err := manifests.Render(manifests.Values{Namespace: ns, Image: "x", Config: "address-pools: []\n"})
	if err != nil {
		t.Fatal(err)
	}
	all, err := install.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	// On failure, what enable would have removed (disable removes the
	// namespace and the CRDs).
	t.Cleanup(func() {
		_ = sc.c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, install.UpstreamWebhook, metav1.DeleteOptions{})
		for _, name := range []string{ns + ":controller", ns + ":speaker"} {
			_ = sc.c.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
			_ = sc.c.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{})
		}
	})
	crds := dyn.Resource(crdGVR)
	for _, o := range all {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		o.SetLabels(nil)
		if o.GetName() == "bgppeers.metallb.io" {
			_ = unstructured.SetNestedMap(o.Object, map[string]any{
				"strategy": "Webhook",
				"webhook": map[string]any{"conversionReviewVersions": []any{"v1", "v1beta1"},
					"clientConfig": map[string]any{"service": map[string]any{"namespace": ns, "name": "metallb-webhook-service", "path": "/convert"}}},
			}, "spec", "conversion")
		}
		// Our guard, deleted by the disable before this, stops being enforced
		// a moment after (the API server's policy cache): until then it
		// refuses these CRDs, as it should while we are installed.
		var err error
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			_, err = crds.Create(ctx, o, metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"})
			if err == nil || !strings.Contains(err.Error(), ns+"-guard") || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	c := sc.c
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("create %s: %v", what, err)
		}
	}
	_, err = c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must("namespace", err)
	for _, name := range []string{"controller", "speaker"} {
		_, err = c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		must("ServiceAccount "+name, err)
		cr := ns + ":" + name
		_, err = c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: cr},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch"}}}}, metav1.CreateOptions{})
		must("ClusterRole "+cr, err)
		_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: cr},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: name}}}, metav1.CreateOptions{})
		must("ClusterRoleBinding "+cr, err)
	}
	_, err = c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}}, metav1.CreateOptions{})
	must("Role pod-lister", err)
	_, err = c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-lister"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "speaker"}}}, metav1.CreateOptions{})
	must("RoleBinding pod-lister", err)
	_, err = c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "metallb-excludel2"},
		Data: map[string]string{"excludel2.yaml": "announcedInterfacesToExclude: [docker.*, cbr.*]\n"}}, metav1.CreateOptions{})
	must("ConfigMap metallb-excludel2", err)
	_, err = c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "metallb-webhook-cert"}}, metav1.CreateOptions{})
	must("Secret metallb-webhook-cert", err)
	// Headless: nothing here ever dials it (the lab's API server, in the
	// host's namespace, must not reach for a ClusterIP).
	_, err = c.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "metallb-webhook-service"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"component": "controller"}, Ports: []corev1.ServicePort{{Port: 443}}}}, metav1.CreateOptions{})
	must("Service metallb-webhook-service", err)
	l := map[string]string{"app": "metallb", "component": "controller"}
	_, err = c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "controller", Labels: l},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: corev1.PodSpec{ServiceAccountName: "controller", Containers: []corev1.Container{{Name: "controller", Image: "quay.io/metallb/controller:v0.15.2"}}}}}},
		metav1.CreateOptions{})
	must("Deployment controller", err)
	ds := upstreamSpeaker(ns)
	_, err = c.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
	must("DaemonSet speaker", err)

	// The addon's pool and advertisement, as its enable writes them.
	sc.createResource(t, sc.resource(t, "ipaddresspools"), "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n"+
		"metadata: {name: default-addresspool, namespace: metallb-system}\nspec: {addresses: [198.51.100.200-198.51.100.210]}\n")
	sc.createResource(t, sc.resource(t, "l2advertisements"), "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\n"+
		"metadata: {name: default-advertise-all-pools, namespace: metallb-system}\n")

	// Its webhook last (it would refuse the pool above): with its
	// controller gone, every edit of a metallb.io resource fails.
	fail := admissionv1.Fail
	none := admissionv1.SideEffectClassNone
	path := "/validate-metallb-io-v1beta1-ipaddresspool"
	_, err = c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: install.UpstreamWebhook},
		Webhooks: []admissionv1.ValidatingWebhook{{Name: "ipaddresspoolvalidationwebhook.metallb.io", FailurePolicy: &fail, SideEffects: &none,
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig:            admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Namespace: ns, Name: "metallb-webhook-service", Path: &path}},
			Rules: []admissionv1.RuleWithOperations{{Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
				Rule: admissionv1.Rule{APIGroups: []string{"metallb.io"}, APIVersions: []string{"v1beta1"}, Resources: []string{"ipaddresspools"}}}}}},
	}, metav1.CreateOptions{})
	must("ValidatingWebhookConfiguration", err)
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func upstreamSpeaker(ns string) *appsv1.DaemonSet {
	l := map[string]string{"app": "metallb", "component": "speaker"}
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "speaker", Labels: l},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: corev1.PodSpec{ServiceAccountName: "speaker", HostNetwork: true,
					Containers: []corev1.Container{{Name: "speaker", Image: "quay.io/metallb/speaker:v0.15.2"}}}}}}
}

// testTakeover: enable where MicroK8s's core metallb runs takes it over.
// Its pool stays as it is and is read by ours; a Service that held one of
// its addresses keeps it and is answered for by our speakers; its
// workloads, webhook and RBAC are gone; a range given to enable goes into
// its pool.
func testTakeover(t *testing.T, sc *snapCluster) {
	ctx := context.Background()
	ns := "metallb-system"
	dyn, err := dynamic.NewForConfig(sc.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The Services earlier tests left hold addresses of other ranges.
	left, err := sc.c.CoreV1().Services("demo").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range left.Items {
		if err := sc.c.CoreV1().Services("demo").Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	coreAddon(t, sc, dyn)
	pools := sc.resource(t, "ipaddresspools")
	// Its webhook is not called here (the lab's API server runs without
	// admission webhooks, see testenv.Options.Workloads): that it is removed
	// is checked below, and that a leftover one would refuse every edit in
	// pkg/install's tests.
	before, err := pools.Get(ctx, "default-addresspool", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A Service the core addon's controller gave an address.
	if _, err := sc.c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	svc, err := sc.c.CoreV1().Services("demo").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "core-held"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "core-held"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A ready backend, so that the Service is announced.
	pod, err := sc.c.CoreV1().Pods("demo").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "core-held", Labels: map[string]string{"app": "core-held"}},
		Spec:       corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = sc.c.CoreV1().Pods("demo").Delete(ctx, "core-held", metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.7", PodIPs: []corev1.PodIP{{IP: "10.1.0.7"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := sc.c.CoreV1().Pods("demo").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	const held = "198.51.100.203"
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: held}}
	if _, err := sc.c.CoreV1().Services("demo").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.c.CoreV1().Services("demo").Delete(ctx, "core-held", metav1.DeleteOptions{}) })

	// Watch the held address from now on: it must never change hands.
	stop := make(chan struct{})
	changed := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(changed)
				return
			case <-time.After(50 * time.Millisecond):
			}
			s, err := sc.c.CoreV1().Services("demo").Get(ctx, "core-held", metav1.GetOptions{})
			if err == nil && ingress(s) != held {
				changed <- ingress(s)
				close(changed)
				return
			}
		}
	}()

	r := sc.run(t, nil, "enable", "198.51.100.200-198.51.100.210")
	r.expect(t, 0,
		"another MetalLB is installed (ValidatingWebhookConfiguration metallb-webhook-configuration, Deployment metallb-system/controller, DaemonSet metallb-system/speaker), such as MicroK8s's core metallb addon: enable takes it over.",
		"ValidatingWebhookConfiguration metallb-webhook-configuration deleted (another MetalLB's)",
		"DaemonSet metallb-system/speaker deleted (another MetalLB's)",
		"Deployment metallb-system/controller deleted (another MetalLB's)",
		"Role metallb-system/pod-lister deleted (another MetalLB's)",
		"CustomResourceDefinition bgppeers.metallb.io: its conversion webhook (the other MetalLB's) is no longer called",
		"metallb is enabled")
	for _, gone := range []func() error{
		func() error {
			_, err := sc.c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, install.UpstreamWebhook, metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := sc.c.AppsV1().Deployments(ns).Get(ctx, "controller", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := sc.c.AppsV1().DaemonSets(ns).Get(ctx, "speaker", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := sc.c.CoreV1().Services(ns).Get(ctx, "metallb-webhook-service", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := sc.c.RbacV1().Roles(ns).Get(ctx, "pod-lister", metav1.GetOptions{})
			return err
		},
	} {
		if err := gone(); !apierrors.IsNotFound(err) {
			t.Errorf("another MetalLB's object is left: %v", err)
		}
	}
	after, err := pools.Get(ctx, "default-addresspool", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the pool is gone: %v", err)
	}
	if diff := cmp.Diff(before.Object["spec"], after.Object["spec"]); diff != "" {
		t.Errorf("the pool changed (-before +after):\n%s", diff)
	}
	crd, err := dyn.Resource(crdGVR).Get(ctx, "bgppeers.metallb.io", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s, _, _ := unstructured.NestedString(crd.Object, "spec", "conversion", "strategy"); s != "None" {
		t.Errorf("bgppeers conversion %q, want None", s)
	}
	waitAccepted(t, sc, func(text, state string) bool {
		return state == "accepted" && strings.Contains(text, "name: default-addresspool")
	})
	// Barrier: a Service created now gets an address, so the controller
	// has judged the one created before.
	fresh := lbAddress(t, sc, "after-takeover")
	t.Cleanup(func() { _ = sc.c.CoreV1().Services("demo").Delete(ctx, "after-takeover", metav1.DeleteOptions{}) })
	if fresh == held {
		t.Errorf("the held address %s was handed out again", held)
	}
	// Our speakers answer for the held address, from one node.
	var macs map[string]int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if macs, _ = Arping(t, ctx, held, 1); len(macs) > 0 {
			break
		}
	}
	if len(macs) != 1 {
		t.Errorf("ARP answers for %s: %v, want one MAC", held, macs)
	}
	close(stop)
	if ip, ok := <-changed; ok {
		t.Errorf("core-held's address changed to %q during the takeover", ip)
	}

	// A range given to enable now goes into the core addon's pool.
	r = sc.run(t, nil, "enable", "198.51.100.200-198.51.100.212")
	r.expect(t, 0, "metallb is enabled")
	after, err = pools.Get(ctx, "default-addresspool", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedStringSlice(after.Object, "spec", "addresses"); !cmp.Equal(got, []string{"198.51.100.200-198.51.100.212"}) {
		t.Errorf("default-addresspool addresses %v", got)
	}
	cm, err := sc.c.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{})
	if err == nil && strings.Contains(cm.Data["config"], "198.51.100.2") {
		t.Errorf("the range went into the ConfigMap too:\n%s", cm.Data["config"])
	}
}
