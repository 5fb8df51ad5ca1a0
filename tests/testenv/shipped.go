package testenv

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/install"
)

// Shipped is the first container of a workload of the manifests enable
// renders by default ("Deployment/metallb-controller",
// "DaemonSet/metallb-speaker"): its arguments after the mode, and the
// NAME=VALUE of every literal variable (not those taken from the pod or a
// Secret). Benchmarks run the binary with these, so that they measure the
// settings users get.
func Shipped(workload string) (args, env []string, err error) {
	y, err := manifests.Render(manifests.Values{Namespace: "metallb-system", Image: "x", Config: "address-pools: []\n"})
	if err != nil {
		return nil, nil, err
	}
	objs, err := install.Decode(y)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range objs {
		if o.GetKind()+"/"+o.GetName() != workload {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if len(cs) == 0 {
			return nil, nil, fmt.Errorf("%s has no container", workload)
		}
		c := cs[0].(map[string]any)
		as, _, _ := unstructured.NestedStringSlice(c, "args")
		if len(as) > 0 {
			args = as[1:]
		}
		vars, _, _ := unstructured.NestedSlice(c, "env")
		for _, e := range vars {
			if v, ok := e.(map[string]any)["value"].(string); ok {
				env = append(env, fmt.Sprintf("%s=%s", e.(map[string]any)["name"], v))
			}
		}
		return args, env, nil
	}
	return nil, nil, fmt.Errorf("no %s in the shipped manifests", workload)
}
