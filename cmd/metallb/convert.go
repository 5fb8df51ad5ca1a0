package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

type convertOptions struct {
	configInput
	to string // the namespace of the resources
}

func newConfigConvertCmd(g *globals) *cobra.Command {
	o := &convertOptions{}
	cmd := &cobra.Command{
		Use:   "convert [FILE|-f FILE|-] [--from-cluster]",
		Short: "Print the metallb.io resources that mean what a v0.12 config means",
		Long: `Print, on standard output, the MetalLB v0.13+ resources (metallb.io) that mean what a
v0.12 config means, keeping names: pool web becomes IPAddressPool web, announced by
L2Advertisement web (layer2) or BGPAdvertisements web-0, web-1, ... (bgp, one per
bgp-advertisements entry); each peer becomes a BGPPeer named after its address; aliases
become Community communities and profiles BFDProfiles. What the resources cannot say is
listed on standard error. The input is read as validate reads it.

To move a cluster over without any address changing: apply the resources, then empty
the ConfigMap's config (until then the names are defined twice, and the controller keeps
the configuration in force):

  metallb config convert --from-cluster > resources.yaml
  microk8s kubectl apply -f resources.yaml
  microk8s kubectl -n metallb-system patch configmap config --type merge -p '{"data":{"config":""}}'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.fileArg(args); err != nil {
				return err
			}
			return o.run(cmd, g)
		},
	}
	o.flags(cmd, "convert the live ConfigMap")
	cmd.Flags().StringVar(&o.to, "to-namespace", "", "namespace of the resources (default: --namespace)")
	return cmd
}

func (o *convertOptions) run(cmd *cobra.Command, g *globals) error {
	data, source, err := o.read(cmd.Context(), g, "convert")
	if err != nil {
		return err
	}
	docs, err := config.SplitDocuments(data)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	var text []byte
	n := 0
	for _, d := range docs {
		switch {
		case d.MetalLBResource():
			fmt.Fprintf(g.err, "%s: %s is a metallb.io resource already: skipped\n", source, d.What())
		case d.Config != nil:
			text = d.Config
			n++
		}
	}
	switch {
	case n == 0:
		return fmt.Errorf("%s holds no v0.12 config (a bare config, or a ConfigMap with a config key)", source)
	case n > 1:
		return fmt.Errorf("%s holds %d configs: give one file per configuration", source, n)
	}
	cfg, err := config.Parse(text)
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			return fmt.Errorf("%s is not valid, so it is not converted (metallb config validate says more):\n%s", source, indented(es))
		}
		return fmt.Errorf("%s: %w", source, err)
	}
	ns := o.to
	if ns == "" {
		ns = o.namespace
	}
	c, err := config.Convert(cfg, ns)
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			return fmt.Errorf("%s cannot be written as metallb.io resources:\n%s", source, indented(es))
		}
		return fmt.Errorf("%s: %w", source, err)
	}
	for i, obj := range c.Objects {
		if i > 0 {
			fmt.Fprintln(g.out, "---")
		}
		if _, err := g.out.Write(obj); err != nil {
			return err
		}
	}
	for _, d := range c.Dropped {
		fmt.Fprintf(g.err, "note: %s\n", d)
	}
	return nil
}

// indented lists errors one per line under their count, as validate does.
func indented(es config.Errors) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d error(s):", len(es))
	for _, e := range es {
		b.WriteString("\n  " + e.Error())
	}
	return b.String()
}
