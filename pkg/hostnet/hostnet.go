// Package hostnet gathers what the installer's network checks need to know
// about the machine it runs on: the subnets of the interfaces layer2 would
// answer on (and whether their addresses came from DHCP), default gateways,
// DHCP scopes of a DHCP server running here, addresses leased by DHCP
// clients here, and MicroK8s's service and pod CIDRs.
//
// Files are read under a root directory so tests can supply their own.
package hostnet

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
	"github.com/microk8s-metallb/metallb/pkg/layer2"
	"github.com/microk8s-metallb/metallb/pkg/netcheck"
)

// Host reads facts below Root ("/" on a real host).
type Host struct {
	Root     string
	SnapData string // $SNAP_DATA, where MicroK8s keeps its args; "" when not under MicroK8s
}

func (h Host) path(p string) string { return filepath.Join(h.Root, p) }

// Subnets returns the addresses (with prefix length) of every interface the
// speaker would answer on, skipping link-local ones. Dynamic is set for
// addresses the kernel holds with a lifetime (DHCP, SLAAC).
func (Host) Subnets() ([]netcheck.Subnet, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	dynamic, _ := dynamicAddrs() // best effort: without it every address looks static
	var out []netcheck.Subnet
	for _, ifi := range ifs {
		if layer2.Eligible(ifi) != "" {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil || p.Addr().IsLinkLocalUnicast() {
				continue
			}
			out = append(out, netcheck.Subnet{Interface: ifi.Name, Prefix: p, Dynamic: dynamic[p.Addr()]})
		}
	}
	return out, nil
}

// dynamicAddrs asks the kernel (rtnetlink) which addresses are not permanent.
func dynamicAddrs() (map[netip.Addr]bool, error) {
	const ifaFPermanent = 0x80
	const ifaFlags = 8 // IFA_FLAGS
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_UNSPEC)
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]bool{}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWADDR || len(m.Data) < syscall.SizeofIfAddrmsg {
			continue
		}
		flags := uint32(m.Data[2])
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			continue
		}
		var addr netip.Addr
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFA_LOCAL, syscall.IFA_ADDRESS:
				if ad, ok := netip.AddrFromSlice(a.Value); ok && (!addr.IsValid() || a.Attr.Type == syscall.IFA_LOCAL) {
					addr = ad
				}
			case ifaFlags:
				if len(a.Value) >= 4 {
					flags = binary.NativeEndian.Uint32(a.Value)
				}
			}
		}
		if addr.IsValid() {
			out[addr] = flags&ifaFPermanent == 0
		}
	}
	return out, nil
}

// Gateways returns the next hops of the default routes, IPv4 and IPv6, and
// the interface of the preferred IPv4 default route ("" when there is none).
func (h Host) Gateways() (gws []netip.Addr, mainIf string, err error) {
	f, err := os.Open(h.path("/proc/net/route"))
	if err != nil {
		return nil, "", fmt.Errorf("read IPv4 routes: %w", err)
	}
	defer f.Close()
	best := uint64(1 << 63)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || fs[1] != "00000000" || fs[7] != "00000000" {
			continue
		}
		gw, err := hex.DecodeString(fs[2])
		if err != nil || len(gw) != 4 {
			continue
		}
		a := netip.AddrFrom4([4]byte{gw[3], gw[2], gw[1], gw[0]})
		if !a.IsUnspecified() {
			gws = append(gws, a)
		}
		if m, err := strconv.ParseUint(fs[6], 10, 63); err == nil && m < best {
			best, mainIf = m, fs[0]
		}
	}
	if f6, err := os.Open(h.path("/proc/net/ipv6_route")); err == nil {
		defer f6.Close()
		sc := bufio.NewScanner(f6)
		for sc.Scan() {
			// dest destlen src srclen nexthop metric refcnt use flags iface
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[1] != "00" || strings.Trim(fs[0], "0") != "" {
				continue
			}
			b, err := hex.DecodeString(fs[4])
			if err != nil || len(b) != 16 {
				continue
			}
			if a := netip.AddrFrom16([16]byte(b)); !a.IsUnspecified() {
				gws = append(gws, a)
			}
		}
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	return slices.Compact(gws), mainIf, nil
}

// Leases returns addresses DHCP clients on this host hold, from dhclient
// (and NetworkManager's dhclient-format) lease files and systemd-networkd's
// lease state.
func (h Host) Leases() []netcheck.Lease {
	var out []netcheck.Lease
	for _, pattern := range []string{
		"/var/lib/dhcp/*.leases", "/var/lib/dhclient/*.leases", "/var/lib/NetworkManager/*.lease*",
	} {
		files, _ := filepath.Glob(h.path(pattern))
		for _, file := range files {
			for _, line := range readLines(file) {
				line = strings.TrimSuffix(strings.TrimSpace(line), ";")
				if v, ok := strings.CutPrefix(line, "fixed-address "); ok {
					if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil {
						out = append(out, netcheck.Lease{Addr: a, Source: h.rel(file)})
					}
				}
			}
		}
	}
	files, _ := filepath.Glob(h.path("/run/systemd/netif/leases/*"))
	for _, file := range files {
		for _, line := range readLines(file) {
			if v, ok := strings.CutPrefix(line, "ADDRESS="); ok {
				if a, err := netip.ParseAddr(v); err == nil {
					out = append(out, netcheck.Lease{Addr: a, Source: h.rel(file)})
				}
			}
		}
	}
	return out
}

// DHCPScopes returns the dynamic ranges of a DHCP server configured on this
// host: dnsmasq's dhcp-range= and ISC dhcpd's range statements.
func (h Host) DHCPScopes() []netcheck.Sourced {
	var out []netcheck.Sourced
	dnsmasq, _ := filepath.Glob(h.path("/etc/dnsmasq.d/*"))
	for _, file := range append([]string{h.path("/etc/dnsmasq.conf")}, dnsmasq...) {
		for _, line := range readLines(file) {
			v, ok := strings.CutPrefix(strings.TrimSpace(line), "dhcp-range=")
			if !ok {
				continue
			}
			// [tag:..,][set:..,]start[,end|,mode][,netmask][,lease]
			var addrs []netip.Addr
			for _, f := range strings.Split(v, ",") {
				if a, err := netip.ParseAddr(strings.TrimSpace(f)); err == nil {
					addrs = append(addrs, a)
				}
			}
			if len(addrs) >= 2 {
				if r, err := iprange.New(addrs[0], addrs[1]); err == nil {
					out = append(out, netcheck.Sourced{Range: r, Source: h.rel(file)})
				}
			}
		}
	}
	for _, file := range []string{h.path("/etc/dhcp/dhcpd.conf"), h.path("/etc/dhcp/dhcpd6.conf")} {
		for _, line := range readLines(file) {
			fs := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
			if len(fs) < 3 || (fs[0] != "range" && fs[0] != "range6") {
				continue
			}
			lo, err1 := netip.ParseAddr(fs[len(fs)-2])
			hi, err2 := netip.ParseAddr(fs[len(fs)-1])
			if err1 == nil && err2 == nil {
				if r, err := iprange.New(lo, hi); err == nil {
					out = append(out, netcheck.Sourced{Range: r, Source: h.rel(file)})
				}
			}
		}
	}
	return out
}

// MicroK8s's defaults when its args files say nothing.
const (
	DefaultServiceCIDR = "10.152.183.0/24"
	DefaultPodCIDR     = "10.1.0.0/16"
)

// ClusterCIDRs returns the service CIDRs (kube-apiserver's
// --service-cluster-ip-range) and pod CIDRs (kube-proxy's --cluster-cidr)
// from MicroK8s's args files, or MicroK8s's defaults.
func (h Host) ClusterCIDRs() (svc, pod []netcheck.Sourced, err error) {
	svc, err = h.argCIDRs("kube-apiserver", "--service-cluster-ip-range", DefaultServiceCIDR)
	if err != nil {
		return nil, nil, err
	}
	pod, err = h.argCIDRs("kube-proxy", "--cluster-cidr", DefaultPodCIDR)
	return svc, pod, err
}

func (h Host) argCIDRs(file, flag, def string) ([]netcheck.Sourced, error) {
	value, source := def, "MicroK8s default"
	if h.SnapData != "" {
		p := filepath.Join(h.SnapData, "args", file)
		for _, line := range readLines(p) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), flag+"="); ok {
				value, source = strings.Trim(v, `"'`), p
			}
		}
	}
	var out []netcheck.Sourced
	for _, c := range strings.Split(value, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("%s in %s: %q is not a CIDR: %w", flag, source, c, err)
		}
		out = append(out, netcheck.Sourced{Range: iprange.FromPrefix(p.Masked()), Source: source})
	}
	return out, nil
}

func (h Host) rel(file string) string {
	if h.Root == "" || h.Root == "/" {
		return file
	}
	r, err := filepath.Rel(h.Root, file)
	if err != nil {
		return file
	}
	return "/" + r
}

func readLines(file string) []string {
	b, err := os.ReadFile(file) // a missing or unreadable file holds no facts
	if err != nil {
		return nil
	}
	return strings.Split(string(b), "\n")
}
