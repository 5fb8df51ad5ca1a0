package main

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"

	"github.com/microk8s-metallb/metallb/pkg/controller"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/pkg/webhook"
)

type controllerOptions struct {
	kubeconfig  string
	namespace   string
	configMap   string
	lbClass     string
	metrics     metricsFlags
	leaderElect bool
	workers     int
	qps         float32
	burst       int
	pprof       bool
	webhook     webhookFlags
}

// webhookFlags say where the validating webhook serves.
type webhookFlags struct {
	addr, service, configuration string
}

func newControllerCmd(g *globals) *cobra.Command {
	o := &controllerOptions{}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Assign IPs from the configured pools to LoadBalancer Services (runs as a Deployment)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), g) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", kubeconfigUsage)
	f.StringVarP(&o.namespace, "namespace", "n", envOr("METALLB_NAMESPACE", k8s.DefaultNamespace), "namespace of the ConfigMap and the leader Lease ($METALLB_NAMESPACE)")
	f.StringVar(&o.configMap, "config", k8s.DefaultConfigMap, "name of the ConfigMap")
	f.StringVar(&o.lbClass, "lb-class", "", "serve Services of this loadBalancerClass (empty: only Services without a class)")
	o.metrics.add(f, ":7472", ":7471")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "hold a Lease so that only one replica is active")
	f.IntVar(&o.workers, "workers", 8, "Services processed in parallel (status writes)")
	f.Float32Var(&o.qps, "kube-api-qps", 200, "client-side limit of API requests per second")
	f.IntVar(&o.burst, "kube-api-burst", 400, "client-side burst of API requests")
	f.BoolVar(&o.pprof, "pprof", false, "serve Go profiles under /debug/pprof on the metrics address")
	f.StringVar(&o.webhook.addr, "webhook-addr", ":9443", "serve the validating webhook (HTTPS) on this address; empty: no webhook, edits are judged once stored")
	f.StringVar(&o.webhook.service, "webhook-service", "metallb-webhook", "the webhook's Service, named in its certificate")
	f.StringVar(&o.webhook.configuration, "webhook-configuration", "", "the ValidatingWebhookConfiguration whose caBundle the controller keeps (default NAMESPACE-validation)")
	return cmd
}

func (o *controllerOptions) run(ctx context.Context, g *globals) error {
	client, cfg, err := k8s.Client(o.kubeconfig, "metallb-controller", o.qps, o.burst)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	reg := metrics.New()
	if o.pprof {
		reg.EnableProfiling()
	}
	if err := o.metrics.serve(ctx, reg, cfg, netip.Addr{}, g.log); err != nil {
		return err
	}
	run := func(ctx context.Context) {
		c := controller.New(ctx, controller.Options{
			Client: client, Log: g.log, Metrics: reg, Namespace: o.namespace,
			ConfigMap: o.configMap, LBClass: o.lbClass, Workers: o.workers,
			Level: &g.level, BaseLevel: g.level.Level(), Dynamic: dyn,
			Started: releaseStartupPages(g.log),
		})
		if o.webhook.addr != "" {
			name := o.webhook.configuration
			if name == "" {
				name = o.namespace + "-validation"
			}
			go func() {
				err := webhook.Run(ctx, webhook.Options{Addr: o.webhook.addr, Service: o.webhook.service, Namespace: o.namespace,
					Configuration: name, Client: client, Reviewer: c, Log: g.log})
				if err != nil {
					g.log.Error("validating webhook not served: edits are judged once stored", "error", err)
				}
			}()
		}
		if err := c.Run(ctx); err != nil {
			g.log.Error("controller stopped", "error", err)
		}
	}
	if !o.leaderElect {
		run(ctx)
		return nil
	}
	return k8s.RunAsLeader(ctx, client, o.namespace, "metallb-controller", g.log, func() { reg.SetReady(true) }, run)
}
