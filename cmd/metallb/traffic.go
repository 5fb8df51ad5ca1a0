package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/microk8s-metallb/metallb/pkg/counting"
	"github.com/microk8s-metallb/metallb/pkg/traffic"
)

// defaultTrafficDir is where the speaker pod mounts the directory its
// speaker and counting containers share.
const defaultTrafficDir = "/run/metallb"

func newTrafficCounterCmd(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "traffic-counter",
		Short: "Count the traffic to the addresses this node announces (the speaker pod's opt-in container, CAP_NET_ADMIN)",
		Long: `Count, in the kernel, the packets and bytes this node receives for each address its
speaker announces: an nftables table "inet ` + counting.TableName + `" with a counter per address, on
prerouting before kube-proxy's DNAT. The speaker writes the addresses to DIR/` + traffic.AddressesFile + ` and
reads the counts from DIR/` + traffic.SocketFile + `; it publishes them as metrics and on its Lease
(metallb status). The table is built again if someone removes it, and deleted when this
stops. Runs beside the speaker when enabled with --traffic-stats; needs CAP_NET_ADMIN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("--dir %s: not a directory (mount the directory the speaker shares, an emptyDir)", dir)
			}
			k, err := counting.NewNFT(-1)
			if err != nil {
				return fmt.Errorf("%w (this container needs CAP_NET_ADMIN)", err)
			}
			return counting.NewCounter(counting.CounterOptions{Dir: dir, Kernel: k, Log: g.log}).Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultTrafficDir, "directory shared with the speaker")
	return cmd
}
