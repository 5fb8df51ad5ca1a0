package counting

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/microk8s-metallb/metallb/pkg/traffic"
)

// TableName is the nftables table the counting container owns (inet
// family): `nft list table inet metallb` shows the counts.
const TableName = "metallb"

// MaxPerFamily is how many addresses of each family the table counts at
// most (a node announcing more is far past what one ARP/NDP responder or
// one router session carries).
const MaxPerFamily = 65536

const (
	chainName = "traffic"
	set4Name  = "announced4"
	set6Name  = "announced6"
)

// NFT is the Kernel of Linux: the table, a chain on prerouting at
// priority raw, a set per family with a counter per element, and one
// lookup rule per family. It needs CAP_NET_ADMIN in the node's network
// namespace (the pod runs with hostNetwork).
type NFT struct {
	conn  *nftables.Conn
	table *nftables.Table
	sets  [2]*nftables.Set // IPv4, IPv6
}

// NewNFT opens a netlink connection to nf_tables of the current network
// namespace (or of the namespace netnsFd names, when it is not -1).
func NewNFT(netnsFd int) (*NFT, error) {
	var opts []nftables.ConnOption
	if netnsFd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("open nf_tables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	// A size makes the kernel pick a hash of fixed buckets: the resizable
	// one (no size) can leave elements out of a dump while it grows, and
	// a read right after a batch of 1,000 missed up to 10 % of them.
	return &NFT{conn: conn, table: t, sets: [2]*nftables.Set{
		{Table: t, Name: set4Name, KeyType: nftables.TypeIPAddr, Counter: true, Size: MaxPerFamily},
		{Table: t, Name: set6Name, KeyType: nftables.TypeIP6Addr, Counter: true, Size: MaxPerFamily},
	}}, nil
}

// Ensure implements Kernel.
func (n *NFT) Ensure() (bool, error) {
	ok, err := n.complete()
	if err != nil {
		return false, err
	}
	if ok {
		return false, nil
	}
	return true, n.build()
}

// complete reports whether the table holds our chain with its two rules
// and both sets.
func (n *NFT) complete() (bool, error) {
	if _, err := n.conn.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("list table %s: %w", TableName, err)
	}
	sets, err := n.conn.GetSets(n.table)
	if err != nil {
		return false, fmt.Errorf("list the sets of %s: %w", TableName, err)
	}
	// By name: v0.3.0's dump does not decode a set's counter flag.
	found := 0
	for _, s := range sets {
		if s.Name == set4Name || s.Name == set6Name {
			found++
		}
	}
	if found != 2 {
		return false, nil
	}
	chain, err := n.conn.ListChain(n.table, chainName)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("list chain %s: %w", chainName, err)
	}
	rules, err := n.conn.GetRules(n.table, chain)
	if err != nil {
		return false, fmt.Errorf("list the rules of %s: %w", chainName, err)
	}
	return len(rules) == 2, nil
}

// build replaces the table with a complete, empty one, in one batch.
func (n *NFT) build() error {
	if _, err := n.conn.ListTableOfFamily(TableName, nftables.TableFamilyINet); err == nil {
		n.conn.DelTable(n.table)
	}
	n.conn.AddTable(n.table)
	chain := n.conn.AddChain(&nftables.Chain{
		Name: chainName, Table: n.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw,
	})
	for i, s := range n.sets {
		if err := n.conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("add set %s: %w", s.Name, err)
		}
		proto, offset, length := byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
		if i == 1 {
			proto, offset, length = unix.NFPROTO_IPV6, 24, 16
		}
		// meta nfproto P; @nh,offset,length (the destination) @set:
		// the lookup counts on the element it finds; no verdict.
		n.conn.AddRule(&nftables.Rule{Table: n.table, Chain: chain, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: length},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		}})
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("build table %s (per-element counters need Linux 5.7 or later): %w", TableName, err)
	}
	return n.selfTest()
}

// ErrNoElementCounters says the kernel made the sets without their
// counters: older kernels ignore the attribute rather than refuse it.
var ErrNoElementCounters = errors.New("this kernel keeps no counter per set element (Linux 5.7 or later needed): traffic cannot be counted here")

// probeAddr is the element selfTest adds for a moment: no packet is ever
// sent to 0.0.0.0.
var probeAddr = netip.IPv4Unspecified()

// selfTest adds an element, reads it back and removes it: without its
// counter, the kernel silently lacks per-element counters, and every
// count would stay 0.
func (n *NFT) selfTest() error {
	if err := n.Apply([]netip.Addr{probeAddr}, nil); err != nil {
		return fmt.Errorf("test table %s: %w", TableName, err)
	}
	els, err := n.conn.GetSetElements(n.sets[0])
	if err != nil {
		return fmt.Errorf("test table %s: %w", TableName, err)
	}
	ok := false
	for _, e := range els {
		if ip, _ := netip.AddrFromSlice(e.Key); ip == probeAddr {
			ok = e.Counter != nil
		}
	}
	if err := n.Apply(nil, []netip.Addr{probeAddr}); err != nil {
		return fmt.Errorf("test table %s: %w", TableName, err)
	}
	if !ok {
		return ErrNoElementCounters
	}
	return nil
}

// Apply implements Kernel.
func (n *NFT) Apply(add, remove []netip.Addr) error {
	for i, s := range n.sets {
		if els := elements(remove, i == 1); len(els) > 0 {
			if err := n.conn.SetDeleteElements(s, els); err != nil {
				return fmt.Errorf("remove from %s: %w", s.Name, err)
			}
		}
		if els := elements(add, i == 1); len(els) > 0 {
			if err := n.conn.SetAddElements(s, els); err != nil {
				return fmt.Errorf("add to %s: %w", s.Name, err)
			}
		}
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("update the sets of %s: %w", TableName, err)
	}
	return nil
}

func elements(ips []netip.Addr, v6 bool) []nftables.SetElement {
	var out []nftables.SetElement
	for _, ip := range ips {
		if ip.Is6() == v6 {
			out = append(out, nftables.SetElement{Key: ip.AsSlice()})
		}
	}
	return out
}

// Read implements Kernel.
func (n *NFT) Read() (map[netip.Addr]traffic.Count, error) {
	out := map[netip.Addr]traffic.Count{}
	for _, s := range n.sets {
		els, err := n.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", s.Name, err)
		}
		for _, e := range els {
			ip, ok := netip.AddrFromSlice(e.Key)
			if !ok {
				continue
			}
			var c traffic.Count
			if e.Counter != nil {
				c = traffic.Count{Packets: e.Counter.Packets, Bytes: e.Counter.Bytes}
			}
			out[ip] = c
		}
	}
	return out, nil
}

// Delete implements Kernel.
func (n *NFT) Delete() error {
	if _, err := n.conn.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		return nil // gone already
	}
	n.conn.DelTable(n.table)
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("delete table %s: %w", TableName, err)
	}
	return nil
}
