package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/microk8s-metallb/metallb/pkg/version"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(g.out, version.Get())
			return err
		},
	}
}
