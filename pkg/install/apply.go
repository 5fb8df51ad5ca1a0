package install

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// FieldManager owns the fields the installer applies.
const FieldManager = "metallb-installer"

// MemberlistSecret holds the key speakers encrypt their gossip with.
const MemberlistSecret = "memberlist"

// resources maps the kinds the manifests use to their API resources.
var resources = map[string]struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}{
	"Namespace":          {schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, false},
	"ServiceAccount":     {schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, true},
	"ConfigMap":          {schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true},
	"Secret":             {schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, true},
	"Service":            {schema.GroupVersionResource{Version: "v1", Resource: "services"}, true},
	"ClusterRole":        {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, false},
	"ClusterRoleBinding": {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, false},
	"Role":               {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, true},
	"RoleBinding":        {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, true},
	"Deployment":         {schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, true},
	"DaemonSet":          {schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, true},
	"CustomResourceDefinition": {schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1",
		Resource: "customresourcedefinitions"}, false},
	"ValidatingWebhookConfiguration": {schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1",
		Resource: "validatingwebhookconfigurations"}, false},
	"ValidatingAdmissionPolicy": {schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1",
		Resource: "validatingadmissionpolicies"}, false},
	"ValidatingAdmissionPolicyBinding": {schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1",
		Resource: "validatingadmissionpolicybindings"}, false},
	// The operator's metallb.io resources, restored after a disable.
	"IPAddressPool":    {k8s.ResourceGVRs["IPAddressPool"], true},
	"L2Advertisement":  {k8s.ResourceGVRs["L2Advertisement"], true},
	"BGPAdvertisement": {k8s.ResourceGVRs["BGPAdvertisement"], true},
	"BGPPeer":          {k8s.ResourceGVRs["BGPPeer"], true},
	"Community":        {k8s.ResourceGVRs["Community"], true},
	"BFDProfile":       {k8s.ResourceGVRs["BFDProfile"], true},
	// Only when the Prometheus Operator's CRDs exist (HasMonitoringCRDs).
	"PodMonitor":     {monitoringGV.WithResource("podmonitors"), true},
	"PrometheusRule": {monitoringGV.WithResource("prometheusrules"), true},
}

var monitoringGV = schema.GroupVersion{Group: "monitoring.coreos.com", Version: "v1"}

// HasMonitoringCRDs reports whether the cluster serves PodMonitors and
// PrometheusRules (MicroK8s's observability addon installs them).
func HasMonitoringCRDs(d discovery.DiscoveryInterface) bool {
	list, err := d.ServerResourcesForGroupVersion(monitoringGV.String())
	if err != nil {
		return false
	}
	n := 0
	for _, r := range list.APIResources {
		if r.Name == "podmonitors" || r.Name == "prometheusrules" {
			n++
		}
	}
	return n == 2
}

// Decode splits a rendered multi-document stream into objects.
func Decode(stream []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decode manifests: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if _, ok := resources[u.GetKind()]; !ok {
			return nil, fmt.Errorf("manifests: unsupported kind %q", u.GetKind())
		}
		out = append(out, u)
	}
}

// Change is what applying one object did.
type Change struct {
	Object string // Kind namespace/name
	Action string // created, configured, unchanged
}

func describe(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", u.GetKind(), ns, u.GetName())
	}
	return fmt.Sprintf("%s %s", u.GetKind(), u.GetName())
}

// Apply server-side-applies every object, in order, and says what changed.
func Apply(ctx context.Context, dyn dynamic.Interface, objs []*unstructured.Unstructured) ([]Change, error) {
	var out []Change
	for _, u := range objs {
		res := resources[u.GetKind()]
		var ri dynamic.ResourceInterface = dyn.Resource(res.gvr)
		if res.namespaced {
			ri = dyn.Resource(res.gvr).Namespace(u.GetNamespace())
		}
		before := ""
		if cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{}); err == nil {
			before = cur.GetResourceVersion()
		} else if !apierrors.IsNotFound(err) {
			return out, fmt.Errorf("read %s: %w", describe(u), err)
		}
		body, err := u.MarshalJSON()
		if err != nil {
			return out, err
		}
		force := true
		got, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
		if err != nil {
			return out, fmt.Errorf("apply %s: %w", describe(u), err)
		}
		action := "configured"
		switch {
		case before == "":
			action = "created"
		case got.GetResourceVersion() == before:
			action = "unchanged"
		}
		out = append(out, Change{describe(u), action})
	}
	return out, nil
}

// EnsureMemberlistSecret creates the memberlist Secret with a random key if
// it does not exist; an existing one is kept, so speakers keep their key
// across re-installs. It says whether it created the Secret.
func EnsureMemberlistSecret(ctx context.Context, client kubernetes.Interface, namespace string) (bool, error) {
	s, err := NewMemberlistSecret(namespace)
	if err != nil {
		return false, err
	}
	_, err = client.CoreV1().Secrets(namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: FieldManager})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsAlreadyExists(err):
		return false, nil
	default:
		return false, fmt.Errorf("create Secret %s/%s: %w", namespace, MemberlistSecret, err)
	}
}

// Installed lists what the installer created and is still there (every kind
// it applies, selected by the part-of label), as "Kind/name" →
// resourceVersion.
func Installed(ctx context.Context, dyn dynamic.Interface, namespace string) (map[string]string, error) {
	out := map[string]string{}
	sel := metav1.ListOptions{LabelSelector: PartOfSelector}
	for kind, res := range resources {
		if res.gvr.Group == k8s.ResourceGVRs["IPAddressPool"].Group {
			continue // the operator's configuration, not objects of the installer's
		}
		var ri dynamic.ResourceInterface = dyn.Resource(res.gvr)
		if res.namespaced {
			ri = dyn.Resource(res.gvr).Namespace(namespace)
		}
		list, err := ri.List(ctx, sel)
		if apierrors.IsNotFound(err) && res.gvr.Group == monitoringGV.Group {
			continue // the Prometheus Operator is not installed
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", res.gvr.Resource, err)
		}
		for _, o := range list.Items {
			out[kind+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	return out, nil
}

// NewMemberlistSecret is the memberlist Secret with a new random key.
func NewMemberlistSecret(namespace string) (*corev1.Secret, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: MemberlistSecret, Namespace: namespace, Labels: map[string]string{
			"app.kubernetes.io/name": "metallb", "app.kubernetes.io/part-of": manifests.PartOf,
		}},
		StringData: map[string]string{"secretkey": base64.StdEncoding.EncodeToString(key)},
	}, nil
}

// schemaObject is an object whose kind can be set before it is encoded.
type schemaObject interface {
	SetGroupVersionKind(schema.GroupVersionKind)
}

// manifestYAML writes a core/v1 object of kind as one YAML document.
func manifestYAML(obj schemaObject, kind string) ([]byte, error) {
	obj.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: kind})
	b, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	return append([]byte("---\n"), b...), nil
}
