package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/microk8s-metallb/metallb/pkg/install"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// applyShippedRBAC applies the ServiceAccounts, Roles, bindings and the
// Lease admission policy of the manifests rendered for ns (and the objects
// of the other kinds named), and removes the cluster-scoped ones when the
// test ends, as disable does (by label; the namespace is the test's own).
func applyShippedRBAC(t *testing.T, ns string, kinds ...string) {
	t.Helper()
	env := cluster.Require(t)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, o := range renderedWithMonitoring(t, ns) {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			objs = append(objs, o)
		default:
			if slices.Contains(kinds, o.GetKind()) {
				objs = append(objs, o)
			}
		}
	}
	if _, err := install.Apply(context.Background(), dyn, objs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := install.Disable(context.Background(), env.Client, nil, "it-no-such-namespace", time.Second, nil); err != nil {
			t.Log(err)
		}
	})
}

// as returns a client that impersonates ns's ServiceAccount sa, as
// `kubectl --as system:serviceaccount:NS:SA` does, with the node claim a
// kubelet-issued token carries when node is set.
func as(t *testing.T, ns, sa, node string) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(asConfig(t, ns, sa, node))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// asDynamic is as for the dynamic client (the metallb.io resources).
func asDynamic(t *testing.T, ns, sa string) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(asConfig(t, ns, sa, ""))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func asConfig(t *testing.T, ns, sa, node string) *rest.Config {
	t.Helper()
	cfg := rest.CopyConfig(cluster.Require(t).Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	if node != "" {
		cfg.Impersonate.Extra = map[string][]string{"authentication.kubernetes.io/node-name": {node}}
	}
	return cfg
}

// TestShippedRBAC asks the API server, as `kubectl auth can-i --as` does,
// every verb on every resource the components could want, with the shipped
// Roles: no Secret for the controller, the speaker's list of them, the controller's Lease rights on its own
// Lease. Then it writes Leases as each component: the admission policy lets
// a speaker write only its own node's Lease and never the controller's, and
// the controller only its own.
func TestShippedRBAC(t *testing.T) {
	env := cluster.Require(t)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	applyShippedRBAC(t, ns)

	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	type res struct{ group, resource, name string }
	checks := []res{
		{"", "secrets", ""}, {"", "secrets", "memberlist"}, {"", "secrets", "metrics-reader-token"},
		{"", "configmaps", "config"}, {"", "configmaps", "config-accepted"},
		{"coordination.k8s.io", "leases", "metallb-controller"}, {"coordination.k8s.io", "leases", "metallb-speaker-node-a"},
		{"", "services", ""}, {"", "services/status", ""}, {"", "pods", ""}, {"apps", "daemonsets", "metallb-speaker"},
		{"metallb.io", "ipaddresspools", ""}, {"metallb.io", "ipaddresspools/status", ""},
		{"metallb.io", "configurationstates", "controller"}, {"metallb.io", "configurationstates/status", "controller"},
		{"metallb.io", "configurationstates", "speaker-node-a"},
		{"metallb.io", "servicel2statuses", ""}, {"metallb.io", "servicel2statuses/status", ""},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", ns + "-validation"},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "metallb-webhook-configuration"},
	}
	got := map[string][]string{}
	for _, sa := range []string{"controller", "speaker"} {
		c := as(t, ns, sa, "")
		for _, r := range checks {
			for _, v := range verbs {
				sar, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
					Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: ns, Verb: v, Group: r.group, Resource: r.resource, Name: r.name,
					}},
				}, metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if sar.Status.Allowed {
					key := fmt.Sprintf("%s %s/%s", sa, r.resource, r.name)
					got[key] = append(got[key], v)
				}
			}
		}
	}
	want := map[string][]string{
		"controller configmaps/config":          {"get", "list", "watch", "patch"},
		"controller configmaps/config-accepted": {"get", "list", "watch", "update"},
		// create: a Lease's name is not known to RBAC before it exists.
		"controller leases/metallb-controller":     {"get", "create", "update"},
		"controller leases/metallb-speaker-node-a": {"create"},
		"controller services/":                     {"get", "list", "watch"},
		"controller pods/":                         {"list", "watch"},
		"controller services/status/":              {"update", "patch"},
		// patch: its finalizer and the allow annotation only (the policy
		// metallb-system-pools; TestPoolDeletionWaits).
		"controller ipaddresspools/":        {"get", "list", "watch", "patch"},
		"controller ipaddresspools/status/": {"patch"},
		// create: as for Leases; the rest on its own only.
		"controller configurationstates/controller":        {"get", "create", "patch"},
		"controller configurationstates/status/controller": {"get", "patch"},
		"controller configurationstates/speaker-node-a":    {"create"},
		// Its webhook's caBundle, in its own configuration only.
		"controller validatingwebhookconfigurations/" + ns + "-validation": {"get", "patch"},
		"speaker configmaps/config":                                        {"get", "list", "watch"},
		"speaker configmaps/config-accepted":                               {"get", "list", "watch"},
		// The admission policy narrows these (below).
		"speaker leases/metallb-controller":     {"get", "create", "update", "delete"},
		"speaker leases/metallb-speaker-node-a": {"get", "create", "update", "delete"},
		"speaker services/":                     {"get", "list", "watch"},
		"speaker daemonsets/metallb-speaker":    {"get"},
		// BGPPeers' passwordSecret: RBAC cannot narrow a list to the
		// Secrets of type basic-auth the speaker asks for, so it covers the
		// namespace; no get, no write, and nothing for the controller.
		"speaker secrets/":                     {"list", "watch"},
		"speaker secrets/memberlist":           {"list", "watch"},
		"speaker secrets/metrics-reader-token": {"list", "watch"},
		// Which node answers for which Service by layer2.
		"speaker servicel2statuses/":        {"list", "create", "delete"},
		"speaker servicel2statuses/status/": {"patch"},
		// Its own ConfigurationState speaker-NODE: the policy
		// metallb-system-states narrows these (TestConfigurationStatePolicy).
		"speaker configurationstates/controller":        {"get", "list", "create", "delete"},
		"speaker configurationstates/status/controller": {"patch"},
		"speaker configurationstates/speaker-node-a":    {"get", "list", "create", "delete"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("shipped rights (-want +got):\n%s", diff)
	}

	// The Leases: the controller's exists (it leads).
	leases := env.Client.CoordinationV1().Leases(ns)
	if _, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "metallb-controller"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	write := func(c kubernetes.Interface, op, name string) error {
		l := c.CoordinationV1().Leases(ns)
		switch op {
		case "create":
			_, err := l.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return err
		case "update":
			cur, err := leases.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Spec.HolderIdentity = ptrTo("intruder")
			_, err = l.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		default:
			return l.Delete(ctx, name, metav1.DeleteOptions{})
		}
	}
	// The policy takes a moment to be in force after it is created.
	speakerA := as(t, ns, "speaker", "node-a")
	eventually(t, 20*time.Second, "the Lease admission policy in force", func() bool {
		return write(speakerA, "update", "metallb-controller") != nil
	})
	steps := []struct {
		name    string
		c       kubernetes.Interface
		op      string
		lease   string
		allowed bool
	}{
		{"speaker of node-a creates its own Lease", speakerA, "create", "metallb-speaker-node-a", true},
		{"and renews it", speakerA, "update", "metallb-speaker-node-a", true},
		{"speaker of node-a takes the controller's Lease", speakerA, "update", "metallb-controller", false},
		{"speaker of node-a deletes the controller's Lease", speakerA, "delete", "metallb-controller", false},
		{"speaker of node-a creates node-b's Lease", speakerA, "create", "metallb-speaker-node-b", false},
		{"speaker of node-b creates its own", as(t, ns, "speaker", "node-b"), "create", "metallb-speaker-node-b", true},
		{"speaker of node-a renews node-b's", speakerA, "update", "metallb-speaker-node-b", false},
		{"speaker of node-a deletes node-b's", speakerA, "delete", "metallb-speaker-node-b", false},
		{"speaker of node-a creates another Lease", speakerA, "create", "kube-scheduler", false},
		{"a speaker token with no node takes the controller's Lease", as(t, ns, "speaker", ""), "update", "metallb-controller", false},
		{"controller renews its Lease", as(t, ns, "controller", ""), "update", "metallb-controller", true},
		{"controller creates a speaker's Lease", as(t, ns, "controller", ""), "create", "metallb-speaker-node-c", false},
		{"speaker of node-a deletes its own Lease", speakerA, "delete", "metallb-speaker-node-a", true},
	}
	for _, s := range steps {
		err := write(s.c, s.op, s.lease)
		if (err == nil) != s.allowed {
			t.Errorf("%s: %v, want allowed=%v", s.name, err, s.allowed)
		}
		if err != nil && !s.allowed && !strings.Contains(err.Error(), "forbidden") && !strings.Contains(err.Error(), "denied") {
			t.Errorf("%s: %v, want a refusal", s.name, err)
		}
	}
}

// TestSpeakerTokenCarriesNode: the claim the Lease policy reads is in the
// tokens the kubelet gets for a speaker pod (a token bound to a Pod on
// node-a names node-a), so the policy holds with real pod tokens too.
func TestSpeakerTokenCarriesNode(t *testing.T) {
	env := cluster.Require(t)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	applyShippedRBAC(t, ns)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "rbac-node-" + ns}}
	if _, err := env.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{})
	})
	pod, err := env.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "speaker-x"},
		Spec: corev1.PodSpec{NodeName: node.Name, ServiceAccountName: "speaker",
			Containers: []corev1.Container{{Name: "speaker", Image: "example.invalid/none"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var tok string
	eventually(t, 20*time.Second, "a token for the speaker pod", func() bool {
		tr, err := env.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "speaker", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
		}, metav1.CreateOptions{})
		if err == nil {
			tok = tr.Status.Token
		}
		return err == nil
	})
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tok
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	leases := c.CoordinationV1().Leases(ns)
	eventually(t, 20*time.Second, "the Lease admission policy in force", func() bool {
		_, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "metallb-speaker-other"}}, metav1.CreateOptions{})
		return err != nil && strings.Contains(err.Error(), "metallb-speaker-"+node.Name)
	})
	if _, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "metallb-speaker-" + node.Name}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("the speaker pod's token cannot create its own Lease: %v", err)
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestServiceL2StatusPolicy: with the shipped RBAC and admission policy, a
// speaker writes the ServiceL2Status of its own node only: it cannot
// create one labelled for another node, say another node answers, or
// delete another node's.
func TestServiceL2StatusPolicy(t *testing.T) {
	ctx := context.Background()
	admin, ns, speakerA := policyFixture(t)
	gvr := schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "servicel2statuses"}
	obj := func(name, node string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
			"metadata": map[string]any{"name": name, "labels": map[string]any{"metallb.io/node": node}}, "spec": map[string]any{},
		}}
	}
	if _, err := admin.Resource(gvr).Namespace(ns).Create(ctx, obj("l2-of-b", "node-b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	status := func(node string) []byte {
		return []byte(`{"status":{"node":"` + node + `","serviceName":"web","serviceNamespace":"demo"}}`)
	}
	res := speakerA.Resource(gvr).Namespace(ns)
	// The policy takes a moment to be in force after it is created.
	eventually(t, 20*time.Second, "the ServiceL2Status admission policy in force", func() bool {
		_, err := res.Patch(ctx, "l2-of-b", types.MergePatchType, status("node-a"), metav1.PatchOptions{}, "status")
		return err != nil && strings.Contains(err.Error(), "denied")
	})
	checkPolicySteps(t, []policyStep{
		{"speaker of node-a creates its own", func() error {
			_, err := res.Create(ctx, obj("l2-of-a", "node-a"), metav1.CreateOptions{})
			return err
		}, true},
		{"and says node-a answers", func() error {
			_, err := res.Patch(ctx, "l2-of-a", types.MergePatchType, status("node-a"), metav1.PatchOptions{}, "status")
			return err
		}, true},
		{"speaker of node-a says node-b answers", func() error {
			_, err := res.Patch(ctx, "l2-of-a", types.MergePatchType, status("node-b"), metav1.PatchOptions{}, "status")
			return err
		}, false},
		{"speaker of node-a creates one for node-b", func() error {
			_, err := res.Create(ctx, obj("l2-forged", "node-b"), metav1.CreateOptions{})
			return err
		}, false},
		{"speaker of node-a deletes node-b's", func() error { return res.Delete(ctx, "l2-of-b", metav1.DeleteOptions{}) }, false},
		{"speaker of node-a deletes its own", func() error { return res.Delete(ctx, "l2-of-a", metav1.DeleteOptions{}) }, true},
	})
}

// TestConfigurationStatePolicy: with the shipped RBAC and admission policy,
// a speaker writes only its own node's ConfigurationState speaker-NODE,
// never the controller's or another node's.
func TestConfigurationStatePolicy(t *testing.T) {
	ctx := context.Background()
	admin, ns, speakerA := policyFixture(t)
	gvr := k8s.ConfigurationStateGVR
	obj := func(name string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "metallb.io/v1beta1", "kind": "ConfigurationState", "metadata": map[string]any{"name": name},
		}}
	}
	for _, name := range []string{"controller", "speaker-node-b"} {
		if _, err := admin.Resource(gvr).Namespace(ns).Create(ctx, obj(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	valid := []byte(`{"status":{"result":"Valid"}}`)
	res := speakerA.Resource(gvr).Namespace(ns)
	eventually(t, 20*time.Second, "the ConfigurationState admission policy in force", func() bool {
		_, err := res.Patch(ctx, "controller", types.MergePatchType, valid, metav1.PatchOptions{}, "status")
		return err != nil && strings.Contains(err.Error(), "denied")
	})
	checkPolicySteps(t, []policyStep{
		{"speaker of node-a creates its own", func() error {
			_, err := res.Create(ctx, obj("speaker-node-a"), metav1.CreateOptions{})
			return err
		}, true},
		{"and writes its verdict", func() error {
			_, err := res.Patch(ctx, "speaker-node-a", types.MergePatchType, valid, metav1.PatchOptions{}, "status")
			return err
		}, true},
		{"speaker of node-a writes node-b's", func() error {
			_, err := res.Patch(ctx, "speaker-node-b", types.MergePatchType, valid, metav1.PatchOptions{}, "status")
			return err
		}, false},
		{"speaker of node-a creates another name", func() error {
			_, err := res.Create(ctx, obj("speaker-node-c"), metav1.CreateOptions{})
			return err
		}, false},
		{"speaker of node-a deletes the controller's", func() error { return res.Delete(ctx, "controller", metav1.DeleteOptions{}) }, false},
		{"speaker of node-a deletes node-b's", func() error { return res.Delete(ctx, "speaker-node-b", metav1.DeleteOptions{}) }, false},
		{"speaker of node-a deletes its own", func() error { return res.Delete(ctx, "speaker-node-a", metav1.DeleteOptions{}) }, true},
	})
}

// policyFixture is the setup of the admission-policy tests: the CRDs, a
// namespace with the shipped RBAC, an admin client and one acting as the
// speaker of node-a.
func policyFixture(t *testing.T) (admin dynamic.Interface, ns string, speakerA dynamic.Interface) {
	t.Helper()
	env := cluster.Require(t)
	admin, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, admin)
	ns = newNamespace(t, env.Client)
	applyShippedRBAC(t, ns)
	speakerA, err = dynamic.NewForConfig(asConfig(t, ns, "speaker", "node-a"))
	if err != nil {
		t.Fatal(err)
	}
	return admin, ns, speakerA
}

// policyStep is one write a policy test makes, and whether it must pass.
type policyStep struct {
	name    string
	do      func() error
	allowed bool
}

// checkPolicySteps runs the steps in order: each allowed or refused by the
// admission policy as it says.
func checkPolicySteps(t *testing.T, steps []policyStep) {
	t.Helper()
	for _, s := range steps {
		err := s.do()
		if (err == nil) != s.allowed {
			t.Errorf("%s: %v, want allowed=%v", s.name, err, s.allowed)
		}
		if err != nil && !s.allowed && !strings.Contains(err.Error(), "denied") {
			t.Errorf("%s: %v, want the policy's refusal", s.name, err)
		}
	}
}
