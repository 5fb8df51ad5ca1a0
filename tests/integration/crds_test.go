package integration

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/install"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// metallbGVR is the resource of a metallb.io kind.
func metallbGVR(version, plural string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "metallb.io", Version: version, Resource: plural}
}

var installCRDsOnce sync.Once

// installCRDs applies the metallb.io CRDs as enable renders them, once
// per API server, and waits until they serve.
func installCRDs(t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	var err error
	installCRDsOnce.Do(func() {
		var b []byte
		b, err = manifests.Render(manifests.Values{Namespace: "metallb-system", Image: "x", Config: "address-pools: []\n"})
		if err != nil {
			return
		}
		var all []*unstructured.Unstructured
		all, err = install.Decode(b)
		if err != nil {
			return
		}
		var crds []*unstructured.Unstructured
		for _, o := range all {
			if o.GetKind() == "CustomResourceDefinition" {
				crds = append(crds, o)
			}
		}
		_, err = install.Apply(context.Background(), dyn, crds)
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the metallb.io CRDs serving", func() bool {
		_, err := dyn.Resource(metallbGVR("v1beta1", "ipaddresspools")).Namespace("default").List(context.Background(), metav1.ListOptions{})
		_, err2 := dyn.Resource(metallbGVR("v1beta1", "configurationstates")).Namespace("default").List(context.Background(), metav1.ListOptions{})
		return err == nil && err2 == nil
	})
}

// object decodes one YAML object.
func object(t *testing.T, text string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(text), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCRDsRefuseBadObjects: the CRDs as enable installs them accept
// MetalLB's own examples (with upstream's defaults) and refuse, at once and
// naming the field, what one object can get wrong; kubectl's strict field
// validation refuses unknown fields. Against the real API server.
func TestCRDsRefuseBadObjects(t *testing.T) {
	env := cluster.Require(t)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, dyn)
	ns := newNamespace(t, env.Client)
	strict := metav1.CreateOptions{FieldValidation: "Strict", DryRun: []string{metav1.DryRunAll}}
	plural := map[string]string{"IPAddressPool": "ipaddresspools", "L2Advertisement": "l2advertisements", "BGPAdvertisement": "bgpadvertisements",
		"BGPPeer": "bgppeers", "Community": "communities", "BFDProfile": "bfdprofiles"}
	create := func(text string, opts metav1.CreateOptions) (*unstructured.Unstructured, error) {
		u := object(t, text)
		v := strings.TrimPrefix(u.GetAPIVersion(), "metallb.io/")
		return dyn.Resource(metallbGVR(v, plural[u.GetKind()])).Namespace(ns).Create(ctx, u, opts)
	}
	pool := func(spec string) string {
		return "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: " + spec
	}
	peer := func(version, spec string) string {
		return "apiVersion: metallb.io/" + version + "\nkind: BGPPeer\nmetadata: {name: r}\nspec: " + spec
	}
	adv := func(spec string) string {
		return "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: " + spec
	}

	// MetalLB's examples go in, with its defaults.
	got, err := create(pool("{addresses: [192.168.1.240-192.168.1.250, 192.168.10.0/24, 'fc00:f853:ccd:e799::/124']}"), metav1.CreateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Fatal(err)
	}
	if auto, _, _ := unstructured.NestedBool(got.Object, "spec", "autoAssign"); !auto {
		t.Errorf("autoAssign defaults to true upstream; got %v", got.Object["spec"])
	}
	for _, ok := range []string{
		"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: example}",
		adv("{ipAddressPools: [p], aggregationLength: 32, localPref: 100, communities: ['65535:65282', 'large:4200000000:1:2', no-advertise]}"),
		peer("v1beta2", "{myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 9s, keepaliveTime: 3s, connectTime: 5s}"),
		peer("v1beta2", "{myASN: 64500, dynamicASN: external, peerAddress: 10.0.0.1, disableMP: true, bfdProfile: fast}"),
		peer("v1beta2", "{myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, vrf: red}"),
		"apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c}\nspec: {communities: [{name: no-advertise, value: '65535:65282'}]}",
		"apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: fast}\nspec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}",
	} {
		if _, err := create(ok, strict); err != nil {
			t.Errorf("refused:\n%s\n%v", ok, err)
		}
	}
	// Old manifests apply: a v1beta1 BGPPeer is served and read as v1beta2.
	if _, err := create(peer("v1beta1", "{myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.2}"), metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatal(err)
	}
	if p, err := dyn.Resource(metallbGVR("v1beta2", "bgppeers")).Namespace(ns).Get(ctx, "r", metav1.GetOptions{}); err != nil || p.GetAPIVersion() != "metallb.io/v1beta2" {
		t.Errorf("the v1beta1 BGPPeer read as v1beta2: %v %v", p, err)
	}

	for _, tc := range []struct {
		name, obj string
		want      []string // in the API server's answer
	}{
		{"a typo in a field", pool("{adresses: [192.168.1.0/24]}"), []string{`unknown field "spec.adresses"`}},
		{"no addresses", pool("{autoAssign: true}"), []string{"spec.addresses: Required value"}},
		{"an address that is not one", pool("{addresses: [192.168.1.300]}"), []string{"spec.addresses[0]", "want a CIDR"}},
		{"a range that ends before it starts", pool("{addresses: [192.168.1.250-192.168.1.240]}"), []string{"spec.addresses[0]", "the range starts after it ends"}},
		{"a range across families", pool("{addresses: ['192.168.1.1-2001:db8::1']}"), []string{"spec.addresses[0]", "one IP family"}},
		{"a bad namespace name", pool("{addresses: [192.168.1.0/24], serviceAllocation: {namespaces: [Web]}}"), []string{"spec.serviceAllocation.namespaces[0]"}},
		{"a router ID in IPv6", peer("v1beta2", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, routerID: '2001:db8::1'}"), []string{"spec.routerID", "IPv4"}},
		{"a hold time below 3s", peer("v1beta2", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 1s}"), []string{"spec.holdTime", "RFC 4271"}},
		{"a keepalive longer than the hold time", peer("v1beta2", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 9s, keepaliveTime: 10s}"), []string{"keepaliveTime is longer than spec.holdTime"}},
		{"no peer ASN", peer("v1beta2", "{myASN: 1, peerAddress: 10.0.0.1}"), []string{"exactly one of spec.peerASN", "spec.dynamicASN"}},
		{"a peer ASN and a dynamic one", peer("v1beta2", "{myASN: 1, peerASN: 2, dynamicASN: internal, peerAddress: 10.0.0.1}"), []string{"exactly one of spec.peerASN"}},
		{"a dynamic ASN that is neither", peer("v1beta2", "{myASN: 1, dynamicASN: any, peerAddress: 10.0.0.1}"), []string{"spec.dynamicASN"}},
		{"an ASN out of range", peer("v1beta2", "{myASN: 4294967296, peerASN: 2, peerAddress: 10.0.0.1}"), []string{"spec.myASN"}},
		{"a port out of range", peer("v1beta2", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, peerPort: 20000}"), []string{"spec.peerPort"}},
		{"families that differ", peer("v1beta2", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, sourceAddress: '2001:db8::1'}"), []string{"different IP families"}},
		{"a VRF name that is no device's", peer("v1beta2", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, vrf: 'red/blue'}"), []string{"spec.vrf", "VRF device"}},
		{"BFD in a VRF", peer("v1beta2", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, vrf: red, bfdProfile: fast}"), []string{"BFD in a VRF is not built yet"}},
		{"a password over 80 bytes", peer("v1beta2", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, password: "+strings.Repeat("x", 81)+"}"), []string{"spec.password"}},
		{"an aggregation length over 32", adv("{aggregationLength: 33}"), []string{"spec.aggregationLength"}},
		{"a community out of range", adv("{communities: ['65536:1']}"), []string{"spec.communities[0]", "16 bits each"}},
		{"service selectors on an advertisement", adv("{serviceSelectors: [{matchLabels: {a: b}}]}"), []string{"spec.serviceSelectors", "not supported by this version yet"}},
		{"a BFD interval below 10 ms", "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: f}\nspec: {receiveInterval: 5}", []string{"spec.receiveInterval"}},
		{"a community value that is not one", "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c}\nspec: {communities: [{name: x, value: 'no:pe'}]}", []string{"spec.communities[0].value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := create(tc.obj, strict)
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.obj)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("refused for another reason: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the answer does not say %q:\n%v", w, err)
				}
			}
		})
	}
}
