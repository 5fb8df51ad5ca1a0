package main

import (
	"github.com/spf13/cobra"
)

func newEnableCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "enable [RANGE...]",
		Short: "Install metallb into the cluster (the MicroK8s enable hook)",
		RunE:  func(*cobra.Command, []string) error { return errNotImplemented },
	}
}

func newDisableCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "disable",
		Short: "Remove everything enable installed (the MicroK8s disable hook)",
		RunE:  func(*cobra.Command, []string) error { return errNotImplemented },
	}
}
