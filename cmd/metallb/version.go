package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/microk8s-metallb/metallb/pkg/version"
)

func newVersionCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version [-o json|yaml]",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := version.Get()
			switch output {
			case "":
				_, err := fmt.Fprintln(g.out, v)
				return err
			case "json":
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			case "yaml":
				return yaml.NewEncoder(g.out).Encode(v)
			}
			return fmt.Errorf("-o %q: want json or yaml (or nothing, for one line)", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml (default: one line)")
	return cmd
}
