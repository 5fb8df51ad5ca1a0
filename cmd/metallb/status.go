package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
	"k8s.io/client-go/dynamic"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/status"
	"github.com/microk8s-metallb/metallb/pkg/terminal"
)

type statusOptions struct {
	kubeconfig string
	context    string
	namespace  string
	output     string
}

func newStatusCmd(g *globals) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [-o table|json|yaml]",
		Short: "Show what metallb is doing: config state, pools, Services, speakers, BGP sessions",
		Long: `Show what metallb is doing right now, from what its components publish:
the configuration's state (accepted or stale, since when, why), each pool's size, used and
free addresses, every LoadBalancer Service with its addresses, pool, protocol and the nodes
announcing it, pending Services with the reason, the speaker of each node (alive by its
Lease, ready, version) and each node's BGP sessions (published on its Lease).

Exit code 0 when all is well; 1 when something needs the operator (a stale or missing
configuration, a Service without an address, a speaker not alive or not ready, a BGP
session down), listed on stderr; 2 and above when the cluster could not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch o.output {
			case "table", "json", "yaml":
			default:
				return fmt.Errorf("-o %q: want table, json or yaml", o.output)
			}
			client, cfg, err := k8s.ClientFor(k8s.Kubeconfig{Path: o.kubeconfig, Context: o.context}, "metallb-status", 0, 0)
			if err != nil {
				return err
			}
			dyn, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return err
			}
			r, err := status.Gather(cmd.Context(), client, status.Options{Namespace: o.namespace, Dynamic: dyn})
			if err != nil {
				return err
			}
			switch o.output {
			case "json":
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				err = enc.Encode(r)
			case "yaml":
				enc := yaml.NewEncoder(g.out)
				enc.SetIndent(2)
				err = enc.Encode(r)
			default:
				err = status.Table(g.out, r)
			}
			if err != nil {
				return err
			}
			// For scripts and cron: exit 1 when something needs the
			// operator, and say what on stderr.
			if att := r.Attention(); len(att) > 0 {
				fmt.Fprintf(g.err, "metallb status: %d thing(s) need attention:\n", len(att))
				for _, a := range att {
					fmt.Fprintf(g.err, "  %s\n", terminal.Safe(a))
				}
				return exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", kubeconfigUsage)
	f.StringVar(&o.context, "context", "", contextUsage)
	f.StringVarP(&o.namespace, "namespace", "n", k8s.DefaultNamespace, "namespace metallb runs in")
	f.StringVarP(&o.output, "output", "o", "table", "table, json or yaml")
	return cmd
}
