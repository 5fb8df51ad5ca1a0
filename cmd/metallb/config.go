package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with the metallb-system/config ConfigMap",
	}
	cmd.AddCommand(newConfigValidateCmd(g))
	return cmd
}

type validateOptions struct {
	file        string
	fromCluster bool
	kubeconfig  string
	namespace   string
	name        string
	allow       bool
}

func newConfigValidateCmd(g *globals) *cobra.Command {
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate [-f FILE|-] [--from-cluster]",
		Short: "Check a configuration and summarise its pools",
		Long: `Check a configuration (MetalLB v0.12 format) and print "ok" with one line per pool,
or every error with its line. Exit code 0 when valid, 1 otherwise.

  metallb config validate -f config.yaml      a config file, or a ConfigMap manifest
  metallb config validate < config.yaml       standard input
  metallb config validate --from-cluster      the live ConfigMap
  metallb config validate --from-cluster -f new.yaml
                                              a new config, judged as the controller
                                              would: refused (exit 1) when it would take
                                              or change a Service's address`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, g) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "config file or ConfigMap manifest (- for standard input)")
	f.BoolVar(&o.fromCluster, "from-cluster", false, "read the live ConfigMap (or, with -f, compare against the cluster)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, in-cluster, MicroK8s, ~/.kube/config)")
	f.StringVar(&o.namespace, "namespace", k8s.DefaultNamespace, "namespace of the ConfigMap")
	f.StringVar(&o.name, "configmap", k8s.DefaultConfigMap, "name of the ConfigMap")
	f.BoolVar(&o.allow, "allow-address-changes", false, "judge as if the ConfigMap had the "+k8s.AllowChangesAnnotation+" annotation")
	return cmd
}

func (o *validateOptions) run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	var data []byte
	var source string
	var err error
	switch {
	case o.file == "-" || (o.file == "" && !o.fromCluster):
		source = "standard input"
		data, err = io.ReadAll(g.in)
	case o.file != "":
		source = o.file
		data, err = os.ReadFile(o.file)
	default:
		source = "ConfigMap " + o.namespace + "/" + o.name
		client, _, cerr := k8s.Client(o.kubeconfig, "metallb-config-validate", 0, 0)
		if cerr != nil {
			return cerr
		}
		var s string
		s, err = k8s.ReadConfigMap(ctx, client, o.namespace, o.name)
		data = []byte(s)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", source, err)
	}
	offset := 0
	if inner, off, ok := config.FromManifest(data); ok {
		data, offset = inner, off
	}
	cfg, err := config.Parse(data)
	if err != nil {
		var es config.Errors
		if !errors.As(config.ShiftLines(err, offset), &es) {
			return err
		}
		fmt.Fprintf(g.out, "%s: %d error(s):\n", source, len(es))
		for _, e := range es {
			fmt.Fprintf(g.out, "  %s\n", e)
		}
		return exitError{code: 1}
	}
	fmt.Fprintln(g.out, "ok")
	for _, p := range cfg.Pools {
		fmt.Fprintf(g.out, "  %s\n", p.Summary())
	}
	if len(cfg.Pools) == 0 {
		fmt.Fprintln(g.out, "  no address pools: LoadBalancer Services will stay <pending>")
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(g.out, "  warning: %s\n", w)
	}
	if o.fromCluster && o.file != "" {
		client, _, err := k8s.Client(o.kubeconfig, "metallb-config-validate", 0, 0)
		if err != nil {
			return err
		}
		affected, err := k8s.AddressImpact(ctx, client, o.namespace, o.name, "", cfg)
		if err != nil {
			return err
		}
		if len(affected) > 0 && !o.allow {
			fmt.Fprintf(g.out, "refused by the controller: %v\n", &k8s.AddressChangeError{Affected: affected, Namespace: o.namespace, Name: o.name})
			return exitError{code: 1}
		}
		for _, a := range affected {
			fmt.Fprintf(g.out, "  renumbered (allowed): %s\n", a)
		}
	}
	return nil
}
