package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/members"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/pkg/speaker"
)

type speakerOptions struct {
	kubeconfig string
	nodeName   string
	namespace  string
	configMap  string
	lbClass    string
	metrics    metricsFlags
	renew      time.Duration
	bind       string
	port       int
	bgpStatus  bool
	trafficDir string
	pprof      bool
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
	f.StringVar(&o.kubeconfig, "kubeconfig", "", kubeconfigUsage)
	f.StringVar(&o.nodeName, "node-name", os.Getenv("METALLB_NODE_NAME"), "name of this node ($METALLB_NODE_NAME)")
	f.StringVarP(&o.namespace, "namespace", "n", envOr("METALLB_NAMESPACE", k8s.DefaultNamespace), "namespace of the ConfigMap and the speaker Leases ($METALLB_NAMESPACE)")
	f.StringVar(&o.configMap, "config", k8s.DefaultConfigMap, "name of the ConfigMap")
	f.StringVar(&o.lbClass, "lb-class", "", "serve Services of this loadBalancerClass (empty: only Services without a class)")
	o.metrics.add(f, ":7473", ":7474")
	f.Lookup("metrics-addr").Usage += "; a port alone listens on --memberlist-bind, the node's address"
	f.Lookup("health-addr").Usage += "; a port alone listens on --memberlist-bind, the node's address"
	f.DurationVar(&o.renew, "lease-interval", speaker.DefaultLeaseRenew, "how often this speaker renews its Lease (shown by \"metallb status\"; liveness is memberlist's)")
	f.StringVar(&o.bind, "memberlist-bind", os.Getenv("METALLB_HOST_IP"), "address to meet the other speakers on ($METALLB_HOST_IP; default: the node's InternalIP)")
	f.IntVar(&o.port, "memberlist-port", members.DefaultPort, "port (TCP and UDP) to meet the other speakers on")
	f.BoolVar(&o.bgpStatus, "service-bgp-status", false, "keep a ServiceBGPStatus per Service this node advertises by BGP, naming the peers (Services x nodes objects)")
	f.StringVar(&o.trafficDir, "traffic-dir", "", "directory shared with the traffic-counter container: count the traffic to each announced address (metallb_service_received_*_total, metallb status); empty: not counted")
	f.BoolVar(&o.pprof, "pprof", false, "serve Go profiles under /debug/pprof on the metrics address")
	return cmd
}

func (o *speakerOptions) run(ctx context.Context, g *globals) error {
	if o.nodeName == "" {
		return errors.New("--node-name is required (the DaemonSet sets it from spec.nodeName through $METALLB_NODE_NAME)")
	}
	var bind netip.Addr
	if o.bind != "" {
		var err error
		if bind, err = netip.ParseAddr(o.bind); err != nil {
			return fmt.Errorf("--memberlist-bind %q: not an IP address (give the node's address, e.g. 192.168.1.10)", o.bind)
		}
	}
	client, cfg, err := k8s.Client(o.kubeconfig, "metallb-speaker", 0, 0)
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
	if err := o.metrics.serve(ctx, reg, cfg, bind, g.log); err != nil {
		return err
	}
	s := speaker.New(ctx, speaker.Options{
		Client: client, Log: g.log.With("node", o.nodeName), Metrics: reg, NodeName: o.nodeName,
		Namespace: o.namespace, ConfigMap: o.configMap, LBClass: o.lbClass,
		LeaseRenew: o.renew, BindAddr: bind, Port: o.port, Key: members.Key(os.Getenv("METALLB_ML_SECRET_KEY")),
		Level: &g.level, BaseLevel: g.level.Level(), Dynamic: dyn, ServiceBGPStatus: o.bgpStatus,
		TrafficDir: o.trafficDir, Started: releaseStartupPages(g.log),
	})
	return s.Run(ctx)
}
