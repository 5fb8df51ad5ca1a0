package status

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/terminal"
)

// Table writes the Report for a person: one section per part.
func Table(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// Names, messages and reasons come from the cluster: escaped, so
	// that none can move the cursor, recolour or hide a line.
	line := func(cells ...string) {
		for i, c := range cells {
			cells[i] = terminal.Safe(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	cfg := "CONFIG: " + r.Config.State
	if r.Config.Since != "" {
		cfg += " since " + r.Config.Since
	}
	line(cfg)
	if r.Config.Reason != "" {
		line("  " + r.Config.Reason)
	}
	for _, w := range r.Config.Warnings {
		line("  warning: " + w)
	}
	line("")
	line("POOL", "PROTOCOL", "SIZE", "USED", "FREE")
	for _, p := range r.Pools {
		line(p.Name, p.Protocol, p.Size, fmt.Sprint(p.Used), p.Free)
	}
	line("")
	line("SERVICE", "ADDRESSES", "POOL", "PROTOCOL", "ANNOUNCED BY")
	var pending []ServiceStatus
	for _, s := range r.Services {
		if len(s.Addresses) == 0 {
			pending = append(pending, s)
			continue
		}
		line(s.Service, strings.Join(s.Addresses, ","), dash(s.Pool), dash(s.Protocol), dash(strings.Join(s.AnnouncedBy, ",")))
	}
	if len(pending) > 0 {
		line("")
		line("PENDING", "WHY")
		for _, s := range pending {
			line(s.Service, s.Pending)
		}
	}
	line("")
	line("NODE", "SPEAKER", "LEASE RENEWED", "READY", "VERSION")
	for _, s := range r.Speakers {
		alive := "dead"
		if s.Alive {
			alive = "alive"
		}
		ready := dash(s.Ready)
		if s.Waiting != "" {
			ready += " (" + s.Waiting + ")"
		}
		line(s.Node, alive, dash(s.Renewed), ready, dash(s.Version))
	}
	for _, s := range r.Speakers {
		if s.Configuration == k8s.ResultInvalid {
			line("  " + s.Node + ": configuration Invalid: " + s.Problem)
		}
	}
	if len(r.Sessions) > 0 {
		line("")
		withBFD := slices.ContainsFunc(r.Sessions, func(s SessionStatus) bool { return s.BFD != "" })
		if withBFD {
			line("NODE", "BGP PEER", "STATE", "PREFIXES SENT", "BFD")
		} else {
			line("NODE", "BGP PEER", "STATE", "PREFIXES SENT")
		}
		for _, s := range r.Sessions {
			st := "down"
			if s.Up {
				st = "established"
			}
			if s.Stale {
				st += " (speaker dead: last seen)"
			}
			if withBFD {
				line(s.Node, s.Peer, st, fmt.Sprint(s.Prefixes), dash(s.BFD))
			} else {
				line(s.Node, s.Peer, st, fmt.Sprint(s.Prefixes))
			}
		}
	}
	if len(r.Traffic) > 0 {
		line("")
		line("SERVICE", "ADDRESS", "NODE", "PACKETS", "BYTES", "RATE (LAST MINUTE)")
		for _, t := range r.Traffic {
			rate := "-"
			if t.Window != "" {
				rate = fmt.Sprintf("%s/s, %s pkt/s", humanBytes(t.BytesPerSecond), humanCount(t.PacketsPerSecond))
			}
			line(t.Service, t.Address, t.Node, fmt.Sprint(t.Packets), humanBytes(float64(t.Bytes)), rate)
		}
	}
	return tw.Flush()
}

// humanBytes writes a byte count with a decimal unit (1.5 kB, 12 MB).
func humanBytes(v float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// humanCount writes a rate with at most one decimal.
func humanCount(v float64) string {
	if v >= 100 || v == float64(int64(v)) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
