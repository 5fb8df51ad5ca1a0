package hostnet

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/netcheck"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHostFacts(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"/proc/net/route": "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
			"wlan0\t00000000\t0164A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth0\t00000000\tFE6433C6\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
			"eth0\t006433C6\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n",
		"/proc/net/ipv6_route": "00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db80000000000000000000000fe 00000400 00000001 00000000 00000003 eth0\n" +
			"20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n",
		"/var/lib/dhcp/dhclient.eth0.leases":             "lease {\n  interface \"eth0\";\n  fixed-address 198.51.100.11;\n}\n",
		"/var/lib/NetworkManager/internal-x-wlan0.lease": "lease {\n  fixed-address 192.0.2.33;\n}\n",
		"/run/systemd/netif/leases/2":                    "# This is private data.\nADDRESS=203.0.113.9\nNETMASK=255.255.255.0\n",
		"/etc/dnsmasq.conf":                              "# comment\ndhcp-range=set:lan,198.51.100.100,198.51.100.199,255.255.255.0,12h\n",
		"/etc/dnsmasq.d/v6":                              "dhcp-range=2001:db8::1000,2001:db8::1fff,64\n",
		"/etc/dhcp/dhcpd.conf":                           "subnet 192.0.2.0 netmask 255.255.255.0 {\n  range 192.0.2.50 192.0.2.99;\n}\n",
		"/snap/args/kube-apiserver":                      "--service-cluster-ip-range=10.152.183.0/24,fd98::/108\n--secure-port=16443\n",
		"/snap/args/kube-proxy":                          "--cluster-cidr='10.1.0.0/16'\n",
	})
	h := Host{Root: root, SnapData: filepath.Join(root, "snap")}

	gws, mainIf, err := h.Gateways()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"192.168.100.1", "198.51.100.254", "2001:db8::fe"}, strs(gws)); diff != "" {
		t.Errorf("gateways (-want +got):\n%s", diff)
	}
	if mainIf != "eth0" {
		t.Errorf("main interface %q, want eth0 (lowest metric)", mainIf)
	}

	var leases []string
	for _, l := range h.Leases() {
		leases = append(leases, l.Addr.String()+" "+l.Source)
	}
	if diff := cmp.Diff([]string{
		"198.51.100.11 /var/lib/dhcp/dhclient.eth0.leases",
		"192.0.2.33 /var/lib/NetworkManager/internal-x-wlan0.lease",
		"203.0.113.9 /run/systemd/netif/leases/2",
	}, leases); diff != "" {
		t.Errorf("leases (-want +got):\n%s", diff)
	}

	if diff := cmp.Diff([]string{
		"198.51.100.100-198.51.100.199 /etc/dnsmasq.conf",
		"2001:db8::1000/116 /etc/dnsmasq.d/v6",
		"192.0.2.50-192.0.2.99 /etc/dhcp/dhcpd.conf",
	}, sourced(h.DHCPScopes())); diff != "" {
		t.Errorf("DHCP scopes (-want +got):\n%s", diff)
	}

	svc, pod, err := h.ClusterCIDRs()
	if err != nil {
		t.Fatal(err)
	}
	args := filepath.Join(root, "snap", "args")
	if diff := cmp.Diff([]string{
		"10.152.183.0/24 " + filepath.Join(args, "kube-apiserver"),
		"fd98::/108 " + filepath.Join(args, "kube-apiserver"),
		"10.1.0.0/16 " + filepath.Join(args, "kube-proxy"),
	}, append(sourced(svc), sourced(pod)...)); diff != "" {
		t.Errorf("cluster CIDRs (-want +got):\n%s", diff)
	}

	// Without MicroK8s's files: its defaults.
	svc, pod, err = Host{Root: root}.ClusterCIDRs()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.152.183.0/24 MicroK8s default", "10.1.0.0/16 MicroK8s default"}, append(sourced(svc), sourced(pod)...)); diff != "" {
		t.Errorf("default CIDRs (-want +got):\n%s", diff)
	}

	writeFiles(t, root, map[string]string{"/snap/args/kube-proxy": "--cluster-cidr=10.1.0.0/33\n"})
	if _, _, err := h.ClusterCIDRs(); err == nil {
		t.Error("a broken --cluster-cidr was accepted")
	}
}

func TestSubnetsSeesLoopbackOnlyAsNothing(t *testing.T) {
	// Runs in whatever namespace the test runs in: it must not fail, and must
	// never report loopback addresses.
	subs, err := Host{}.Subnets()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if s.Prefix.Addr().IsLoopback() {
			t.Errorf("loopback reported: %v", s)
		}
	}
}

func strs(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func sourced(ss []netcheck.Sourced) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Range.String()+" "+s.Source)
	}
	return out
}
