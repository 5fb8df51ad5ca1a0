package traffic

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Count is what the kernel counted for one address.
type Count struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// AddressesFile, in the shared directory, lists the addresses the node
// announces: one per line, written whole (a rename) by the speaker.
const AddressesFile = "announced"

// SocketFile, in the shared directory, is the counting container's unix
// socket.
const SocketFile = "traffic.sock"

// MaxAddressesFile bounds what the counter reads (a /64's worth of
// announced addresses would not fit a node's ARP table either).
const MaxAddressesFile = 4 << 20

// ErrTooLarge is returned for an addresses file over MaxAddressesFile.
var ErrTooLarge = errors.New("addresses file too large")

// FormatAddresses renders ips in the file's format, sorted.
func FormatAddresses(ips []netip.Addr) []byte {
	ips = slices.Clone(ips)
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	ips = slices.Compact(ips)
	var b bytes.Buffer
	b.WriteString("# addresses this node announces (written by the speaker)\n")
	for _, ip := range ips {
		b.WriteString(ip.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseAddresses reads the file's format: one address per line; blank
// lines and lines starting with # are skipped. Zones and IPv4-mapped IPv6
// addresses are refused (they never name an announced address).
func ParseAddresses(b []byte) ([]netip.Addr, error) {
	if len(b) > MaxAddressesFile {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxAddressesFile)
	}
	var out []netip.Addr
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ip, err := netip.ParseAddr(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if ip.Zone() != "" || ip.Is4In6() {
			return nil, fmt.Errorf("line %d: %q is not a plain IPv4 or IPv6 address", i+1, line)
		}
		out = append(out, ip)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out), nil
}

// WriteAddresses replaces dir's addresses file in one rename, so that the
// counter never reads half of it.
func WriteAddresses(dir string, ips []netip.Addr) error {
	tmp, err := os.CreateTemp(dir, "."+AddressesFile+"-*")
	if err != nil {
		return fmt.Errorf("write the announced addresses: %w", err)
	}
	_, err = tmp.Write(FormatAddresses(ips))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, AddressesFile))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write the announced addresses: %w", err)
	}
	return nil
}

// Diff returns what to add to have and what to remove from it to make it
// want.
func Diff(have map[netip.Addr]bool, want []netip.Addr) (add, remove []netip.Addr) {
	w := make(map[netip.Addr]bool, len(want))
	for _, ip := range want {
		w[ip] = true
		if !have[ip] {
			add = append(add, ip)
		}
	}
	for ip := range have {
		if !w[ip] {
			remove = append(remove, ip)
		}
	}
	slices.SortFunc(remove, func(a, b netip.Addr) int { return a.Compare(b) })
	return add, remove
}
