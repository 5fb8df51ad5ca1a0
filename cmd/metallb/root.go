package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/microk8s-metallb/metallb/pkg/logging"
)

// streams are the process's standard streams, injected so commands are testable.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

// globals holds what every subcommand shares: the logger built from the
// persistent flags.
type globals struct {
	streams
	logLevel  string
	logFormat string
	level     slog.LevelVar
	log       *slog.Logger
}

// kubeconfigUsage is the help of every --kubeconfig, in the order
// k8s.RestConfig looks.
const kubeconfigUsage = "kubeconfig (default: $KUBECONFIG, else in-cluster, else MicroK8s's client.config ($SNAP_DATA, /var/snap/microk8s/current), else ~/.kube/config)"

// contextUsage is the help of every --context.
const contextUsage = "the kubeconfig context to use (default: its current context)"

// exitError carries a specific exit code through cobra without printing
// anything more (the command already reported what went wrong).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func run(ctx context.Context, args []string, s streams) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(s.err, "metallb: %v\n", err)
	return 1
}

func newRootCmd(s streams) *cobra.Command {
	g := &globals{streams: s}
	root := &cobra.Command{
		Use:   "metallb",
		Short: "A bare-metal load balancer for Kubernetes, shipped as a MicroK8s addon",
		Long: `metallb gives Services of type LoadBalancer a real IP address from pools you own,
and makes your network deliver it: by answering ARP/NDP (layer2) or by BGP.

One binary runs every part: the controller (assigns IPs), the speaker (announces
them), and the installer behind "microk8s enable lab/metallb" / "microk8s disable lab/metallb".`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			lvl, err := logging.ParseLevel(g.logLevel)
			if err != nil {
				return err
			}
			g.level.Set(lvl)
			g.log, err = logging.New(g.err, &g.level, g.logFormat)
			return err
		},
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")

	root.AddCommand(
		newControllerCmd(g),
		newSpeakerCmd(g),
		newTrafficCounterCmd(g),
		newEnableCmd(g),
		newDisableCmd(g),
		newVersionCmd(g),
		newConfigCmd(g),
		newStatusCmd(g),
	)
	return root
}

// envOr returns the environment variable's value, or def when unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}
