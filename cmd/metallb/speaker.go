package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/pkg/speaker"
)

type speakerOptions struct {
	kubeconfig  string
	nodeName    string
	namespace   string
	configMap   string
	lbClass     string
	metricsAddr string
	renew       time.Duration
	timeout     time.Duration
}

func newSpeakerCmd(g *globals) *cobra.Command {
	o := &speakerOptions{}
	cmd := &cobra.Command{
		Use:   "speaker",
		Short: "Announce assigned IPs by layer2 (ARP/NDP) and BGP (runs as a DaemonSet)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), g) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig (default: in-cluster, $KUBECONFIG, MicroK8s, ~/.kube/config)")
	f.StringVar(&o.nodeName, "node-name", os.Getenv("METALLB_NODE_NAME"), "name of this node ($METALLB_NODE_NAME)")
	f.StringVar(&o.namespace, "namespace", envOr("METALLB_NAMESPACE", k8s.DefaultNamespace), "namespace of the ConfigMap and the speaker Leases ($METALLB_NAMESPACE)")
	f.StringVar(&o.configMap, "config", k8s.DefaultConfigMap, "name of the ConfigMap")
	f.StringVar(&o.lbClass, "lb-class", "", "serve Services of this loadBalancerClass (empty: only Services without a class)")
	f.StringVar(&o.metricsAddr, "metrics-addr", ":7473", "address for /metrics, /healthz and /readyz (empty: off)")
	f.DurationVar(&o.renew, "liveness-interval", speaker.DefaultLeaseRenew, "how often this speaker renews its liveness Lease")
	f.DurationVar(&o.timeout, "liveness-timeout", speaker.DefaultLeaseDuration, "a speaker silent this long is dead and its addresses move")
	return cmd
}

func (o *speakerOptions) run(ctx context.Context, g *globals) error {
	if o.nodeName == "" {
		return errors.New("--node-name is required (the DaemonSet sets it from spec.nodeName through $METALLB_NODE_NAME)")
	}
	client, _, err := k8s.Client(o.kubeconfig, "metallb-speaker", 0, 0)
	if err != nil {
		return err
	}
	reg := metrics.New()
	if err := reg.Serve(ctx, o.metricsAddr, g.log); err != nil {
		return err
	}
	s := speaker.New(ctx, speaker.Options{
		Client: client, Log: g.log.With("node", o.nodeName), Metrics: reg, NodeName: o.nodeName,
		Namespace: o.namespace, ConfigMap: o.configMap, LBClass: o.lbClass,
		LeaseRenew: o.renew, LeaseDuration: o.timeout,
		Level: &g.level, BaseLevel: g.level.Level(),
	})
	return s.Run(ctx)
}
