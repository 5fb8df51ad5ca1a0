package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/controller"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// runController runs an in-process controller for ns (whose ConfigMap is
// already there) and returns its metrics and a stop function.
func runController(t *testing.T, c kubernetes.Interface, ns string) (*metrics.Registry, func()) {
	t.Helper()
	reg := metrics.New()
	ctx, cancel := context.WithCancel(context.Background())
	ctl := controller.New(ctx, controller.Options{Client: c, Log: testLogger(t), Metrics: reg, Namespace: ns})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ctl.Run(ctx); err != nil {
			t.Errorf("controller: %v", err)
		}
	}()
	var once bool
	stop := func() {
		if !once {
			once = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return reg, stop
}

func annotateConfig(t *testing.T, c kubernetes.Interface, ns, key, value string) {
	t.Helper()
	ctx := context.Background()
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[key] = value
	if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// acceptedState returns the accepted copy's config and state annotation.
func acceptedState(t *testing.T, c kubernetes.Interface, ns string) (cfg, state, reason string) {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), k8s.AcceptedName("config"), metav1.GetOptions{})
	if err != nil {
		return "", "", err.Error()
	}
	return cm.Data["config"], cm.Annotations[k8s.StateAnnotation], cm.Annotations[k8s.StateReasonAnnotation]
}

const twoPoolConfig = "address-pools:\n- {name: old, protocol: layer2, addresses: [192.0.2.50/31]}\n- {name: keep, protocol: layer2, addresses: [192.0.2.60/31]}\n"

// An edit that would take a Service's address is refused: the Service keeps
// it, the Warning Event names it, the stale metric and the accepted copy say
// so. An empty config too. The opt-in annotation renumbers.
func TestControllerRefusesEditsThatTakeAddresses(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	setConfig(t, c, ns, twoPoolConfig)
	reg, _ := runController(t, c, ns)
	createSvc(t, c, ns, lbService("mover"))
	waitIngress(t, c, ns, "mover", "192.0.2.50")
	eventually(t, 10*time.Second, "the accepted copy", func() bool {
		cfg, state, _ := acceptedState(t, c, ns)
		return cfg == twoPoolConfig && state == "accepted"
	})

	for _, tc := range []struct{ name, cfg, reason string }{
		{"pool removed", "address-pools:\n- {name: keep, protocol: layer2, addresses: [192.0.2.60/31]}\n", "192.0.2.50 is in no pool of the new config"},
		{"pool shrunk", "address-pools:\n- {name: old, protocol: layer2, addresses: [192.0.2.51/32]}\n- {name: keep, protocol: layer2, addresses: [192.0.2.60/31]}\n", "192.0.2.50 is in no pool of the new config"},
		{"comment only", "# nothing here yet\n", "the new config has no address pools"},
		{"re-protocolled", "address-pools:\n- {name: old, protocol: bgp, addresses: [192.0.2.50/31]}\n- {name: keep, protocol: layer2, addresses: [192.0.2.60/31]}\npeers: [{peer-address: 203.0.113.1, peer-asn: 64500, my-asn: 64501}]\n",
			`192.0.2.50 would be announced by bgp (pool "old") instead of layer2 (pool "old")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setConfig(t, c, ns, tc.cfg)
			want := "configuration refused, although valid (the last accepted configuration stays in force): the new config would take or change the addresses of 1 Service(s); " +
				"keep their addresses in a pool of the same protocol, or, to renumber them on purpose, annotate the ConfigMap (kubectl -n " + ns +
				" annotate configmap config metallb.io/allow-address-changes=true): " + ns + "/mover [192.0.2.50]: " + tc.reason
			waitEvent(t, c, ns, "config", k8s.ReasonInvalid, want)
			eventually(t, 10*time.Second, "the stale state in the accepted copy", func() bool {
				cfg, state, reason := acceptedState(t, c, ns)
				return cfg == twoPoolConfig && state == "stale" && strings.Contains(reason, tc.reason)
			})
			if got := gaugeValue(t, reg, "metallb_k8s_client_config_stale_bool"); got != 1 {
				t.Errorf("config_stale_bool = %v, want 1", got)
			}
			// Barrier: a Service created after the refusal is assigned
			// under the config in force, so the controller has processed
			// the edit; mover must still hold its address.
			probe := "probe-" + strings.ReplaceAll(tc.name, " ", "-")
			createSvc(t, c, ns, lbService(probe))
			waitIngress(t, c, ns, probe, "192.0.2.51")
			if got := ingressOf(t, c, ns, "mover"); got != "192.0.2.50" {
				t.Fatalf("mover has %q after a refused edit, want 192.0.2.50", got)
			}
			if err := c.CoreV1().Services(ns).Delete(context.Background(), probe, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, probe+" gone", func() bool {
				_, err := c.CoreV1().Services(ns).Get(context.Background(), probe, metav1.GetOptions{})
				return err != nil
			})
		})
	}

	// Back to a config that keeps the address: accepted, no longer stale.
	setConfig(t, c, ns, twoPoolConfig+"- {name: more, protocol: layer2, addresses: [192.0.2.70/31]}\n")
	eventually(t, 10*time.Second, "the compatible edit accepted", func() bool {
		_, state, _ := acceptedState(t, c, ns)
		return state == "accepted"
	})
	if got := gaugeValue(t, reg, "metallb_k8s_client_config_stale_bool"); got != 0 {
		t.Errorf("config_stale_bool = %v after a compatible edit, want 0", got)
	}

	// The operator asks for it: the Service is renumbered.
	setConfig(t, c, ns, "address-pools:\n- {name: keep, protocol: layer2, addresses: [192.0.2.60/31]}\n")
	waitIngress(t, c, ns, "mover", "192.0.2.50") // still refused
	annotateConfig(t, c, ns, k8s.AllowChangesAnnotation, "true")
	waitIngress(t, c, ns, "mover", "192.0.2.60")
	waitEvent(t, c, ns, "mover", controller.ReasonChanged, "Moved from [192.0.2.50] to [192.0.2.60]")

	// The opt-in was for that edit: the controller removed it, and the
	// next renumbering edit (annotations kept as they are) is refused.
	eventually(t, 10*time.Second, "the annotation removed", func() bool {
		cm, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), "config", metav1.GetOptions{})
		_, still := cm.Annotations[k8s.AllowChangesAnnotation]
		return err == nil && !still
	})
	editConfigData(t, c, ns, "address-pools:\n- {name: next, protocol: layer2, addresses: [192.0.2.80/31]}\n")
	eventually(t, 10*time.Second, "the next renumbering edit refused", func() bool {
		_, state, reason := acceptedState(t, c, ns)
		return state == "stale" && strings.Contains(reason, ns+"/mover [192.0.2.60]")
	})
	if got := ingressOf(t, c, ns, "mover"); got != "192.0.2.60" {
		t.Fatalf("mover has %q after the refused edit, want 192.0.2.60", got)
	}
}

// editConfigData changes the ConfigMap's config and nothing else, as
// kubectl edit does.
func editConfigData(t *testing.T, c kubernetes.Interface, ns, cfg string) {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), "config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["config"] = cfg
	if _, err := c.CoreV1().ConfigMaps(ns).Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A refused edit is judged again when the Services it would move are gone.
func TestRefusedEditAppliesOnceItsServicesAreGone(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	setConfig(t, c, ns, twoPoolConfig)
	runController(t, c, ns)
	createSvc(t, c, ns, lbService("holder"))
	waitIngress(t, c, ns, "holder", "192.0.2.50")
	setConfig(t, c, ns, "address-pools:\n- {name: keep, protocol: layer2, addresses: [192.0.2.60/31]}\n")
	waitEvent(t, c, ns, "config", k8s.ReasonInvalid, ns+"/holder [192.0.2.50]")
	if err := c.CoreV1().Services(ns).Delete(context.Background(), "holder", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the edit accepted once holder is gone", func() bool {
		cfg, state, _ := acceptedState(t, c, ns)
		return state == "accepted" && strings.Contains(cfg, "keep") && !strings.Contains(cfg, "old")
	})
}

// Fail-static survives a restart: a controller that starts while the
// ConfigMap is broken, or gone, runs on the accepted copy.
func TestControllerStartsOnTheAcceptedConfig(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	ctx := context.Background()
	setConfig(t, c, ns, twoPoolConfig)
	_, stop := runController(t, c, ns)
	createSvc(t, c, ns, lbService("a"))
	waitIngress(t, c, ns, "a", "192.0.2.50")
	eventually(t, 10*time.Second, "the accepted copy", func() bool {
		cfg, _, _ := acceptedState(t, c, ns)
		return cfg == twoPoolConfig
	})
	stop()

	setConfig(t, c, ns, "address-pools:\n- name: old\n  protocol: layer2\n  adresses: [192.0.2.50/31]\n")
	reg, stop := runController(t, c, ns)
	createSvc(t, c, ns, lbService("b"))
	waitIngress(t, c, ns, "b", "192.0.2.51")
	if got := ingressOf(t, c, ns, "a"); got != "192.0.2.50" {
		t.Fatalf("a has %q, want 192.0.2.50", got)
	}
	if got := gaugeValue(t, reg, "metallb_k8s_client_config_stale_bool"); got != 1 {
		t.Errorf("config_stale_bool = %v, want 1", got)
	}
	waitEvent(t, c, ns, "config", k8s.ReasonInvalid, `unknown key "adresses"`)
	stop()

	if err := c.CoreV1().ConfigMaps(ns).Delete(ctx, "config", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	runController(t, c, ns)
	createSvc(t, c, ns, lbService("c"))
	waitIngress(t, c, ns, "c", "192.0.2.60")
	eventually(t, 10*time.Second, "the missing ConfigMap in the accepted copy's state", func() bool {
		cfg, state, reason := acceptedState(t, c, ns)
		return cfg == twoPoolConfig && state == "stale" && strings.HasPrefix(reason, "the ConfigMap is missing")
	})
	for name, want := range map[string]string{"a": "192.0.2.50", "b": "192.0.2.51"} {
		if got := ingressOf(t, c, ns, name); got != want {
			t.Errorf("%s has %q, want %s", name, got, want)
		}
	}
}
