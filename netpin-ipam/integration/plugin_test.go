package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

func TestAddNetpinAddress(t *testing.T) {
	n := newNetwork(t, networkOptions{})
	p := newPod(t, annotations("10.20.1.7", entry("10.20.1.7/24", "10.20.1.1")))

	r := n.mustAdd(p)
	if got := resultIPs(r); !equal(got, []string{"10.20.1.7/24"}) {
		t.Fatalf("result IPs %v, want [10.20.1.7/24]", got)
	}
	if got := ifaceAddrs(t, p); !equal(got, []string{"10.20.1.7/24"}) {
		t.Fatalf("%s in the pod has %v, want [10.20.1.7/24]", ifName, got)
	}
	if gw := defaultGateway(t, p, netlink.FAMILY_V4); !gw.Equal(net.ParseIP("10.20.1.1")) {
		t.Fatalf("default route via %v, want via 10.20.1.1", gw)
	}
	// host-local was not asked: no lease anywhere.
	if _, err := os.Stat(filepath.Join(n.dataDir, n.name)); !os.IsNotExist(err) {
		t.Fatalf("host-local dataDir %s exists (err %v): the delegate was called for a netpin pod", n.dataDir, err)
	}
	if err := n.check(p.rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	for i := range 2 {
		if err := n.del(p.rt); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
}

func TestDualStack(t *testing.T) {
	// The kernel must have IPv6; this test fails rather than skips without it.
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Fatalf("dual-stack needs IPv6, but the kernel has none (/proc/sys/net/ipv6: %v)", err)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/default/disable_ipv6"); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("dual-stack needs IPv6, but /proc/sys/net/ipv6/conf/default/disable_ipv6 is %q (err %v)", b, err)
	}
	n := newNetwork(t, networkOptions{})
	p := newPod(t, annotations("10.20.2.7,fd00:20::7",
		entry("fd00:20::7/64", "fd00:20::1"), entry("10.20.2.7/24", "10.20.2.1")))

	r := n.mustAdd(p)
	want := []string{"10.20.2.7/24", "fd00:20::7/64"}
	if got := resultIPs(r); !equal(got, want) {
		t.Fatalf("result IPs %v, want %v", got, want)
	}
	got := ifaceAddrs(t, p)
	for _, w := range want {
		if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+w+" ") {
			t.Fatalf("%s in the pod has %v, want %v on it", ifName, got, want)
		}
	}
	if gw := defaultGateway(t, p, netlink.FAMILY_V4); !gw.Equal(net.ParseIP("10.20.2.1")) {
		t.Fatalf("IPv4 default route via %v, want via 10.20.2.1", gw)
	}
	if gw := defaultGateway(t, p, netlink.FAMILY_V6); !gw.Equal(net.ParseIP("fd00:20::1")) {
		t.Fatalf("IPv6 default route via %v, want via fd00:20::1", gw)
	}
	if err := n.check(p.rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if err := n.del(p.rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
}

func TestConfiguredRoutes(t *testing.T) {
	n := newNetwork(t, networkOptions{routes: `[{"dst":"10.99.0.0/16"},{"dst":"::/0"}]`})
	p := newPod(t, annotations("10.20.3.7", entry("10.20.3.7/24", "10.20.3.1")))

	r := n.mustAdd(p)
	if len(r.Routes) != 1 || r.Routes[0].String() != (&types.Route{Dst: mustCIDR("10.99.0.0/16"), GW: net.ParseIP("10.20.3.1").To4()}).String() {
		t.Fatalf("result routes %v, want only 10.99.0.0/16 via 10.20.3.1 (no IPv6 route for an IPv4 pod)", r.Routes)
	}
	var found bool
	err := p.ns.Do(func(ns.NetNS) error {
		routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: &net.IPNet{IP: net.ParseIP("10.99.0.0").To4(), Mask: net.CIDRMask(16, 32)}}, netlink.RT_FILTER_DST)
		for _, rt := range routes {
			found = found || rt.Gw.Equal(net.ParseIP("10.20.3.1"))
		}
		return err
	})
	if err != nil || !found {
		t.Fatalf("route 10.99.0.0/16 via 10.20.3.1 not in the pod (err %v)", err)
	}
	if gw := defaultGateway(t, p, netlink.FAMILY_V4); gw != nil {
		t.Fatalf("a default route via %v exists, but routes were configured without one", gw)
	}
}

func mustCIDR(s string) net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return *n
}

func TestDelegatedToHostLocal(t *testing.T) {
	n := newNetwork(t, networkOptions{})
	for _, tc := range []struct {
		name        string
		annotations map[string]string
	}{
		{"no annotations passed", nil},
		{"no netpin annotation", map[string]string{"other": "x"}},
		{"empty netpin.io/allocated", map[string]string{"netpin.io/allocated": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod(t, tc.annotations)
			r := n.mustAdd(p)
			if len(r.IPs) != 1 || !hostLocalRange.Contains(r.IPs[0].Address.IP) {
				t.Fatalf("result IPs %v, want one from host-local's 10.244.x.0/24", resultIPs(r))
			}
			ip := r.IPs[0].Address.IP
			if got := ifaceAddrs(t, p); !equal(got, resultIPs(r)) {
				t.Fatalf("%s in the pod has %v, want %v", ifName, got, resultIPs(r))
			}
			lease, err := os.ReadFile(n.leaseFile(ip))
			if err != nil || !strings.HasPrefix(string(lease), p.rt.ContainerID) {
				t.Fatalf("host-local lease %s: %q, %v; want it held by %s", n.leaseFile(ip), lease, err, p.rt.ContainerID)
			}
			if err := n.check(p.rt); err != nil {
				t.Fatalf("CHECK: %v", err)
			}
			for i := range 2 {
				if err := n.del(p.rt); err != nil {
					t.Fatalf("DEL #%d: %v", i+1, err)
				}
				if _, err := os.Stat(n.leaseFile(ip)); !os.IsNotExist(err) {
					t.Fatalf("after DEL #%d the lease %s is still there (err %v)", i+1, n.leaseFile(ip), err)
				}
			}
		})
	}
}

func TestDelNeedsNoAnnotations(t *testing.T) {
	n := newNetwork(t, networkOptions{})
	p := newPod(t, annotations("10.20.4.7", entry("10.20.4.7/24", "10.20.4.1")))
	n.mustAdd(p)
	for _, ann := range []map[string]string{nil, {"netpin.io/allocated": "garbage"}} {
		if err := n.del(p.withAnnotations(ann)); err != nil {
			t.Fatalf("DEL with annotations %v: %v", ann, err)
		}
	}
}

func TestCheckFails(t *testing.T) {
	n := newNetwork(t, networkOptions{})
	p := newPod(t, annotations("10.20.5.7", entry("10.20.5.7/24", "10.20.5.1")))
	n.mustAdd(p)

	// The annotations now name another address than the one ADD returned.
	err := n.check(p.withAnnotations(annotations("10.20.5.8", entry("10.20.5.8/24", "10.20.5.1"))))
	wantPluginError(t, err, 102, "netpin-ipam: CHECK: prevResult lists 10.20.5.7/24, which is not a netpin address of the pod (10.20.5.8/24)")

	// Same address, another prefix length.
	err = n.check(p.withAnnotations(annotations("10.20.5.7", entry("10.20.5.7/16", "10.20.5.1"))))
	wantPluginError(t, err, 102, "netpin-ipam: CHECK: prevResult lists 10.20.5.7/24, which is not a netpin address of the pod (10.20.5.7/16)")

	// The interface lost its address.
	err = p.ns.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		addr, _ := netlink.ParseAddr("10.20.5.7/24")
		return netlink.AddrDel(link, addr)
	})
	if err != nil {
		t.Fatalf("removing the address: %v", err)
	}
	err = n.check(p.rt)
	wantPluginError(t, err, 102, fmt.Sprintf("netpin-ipam: CHECK: interface eth0 in %s lacks 10.20.5.7/24 of netpin.io/allocated", p.ns.Path()))
}

func TestAddErrors(t *testing.T) {
	n := newNetwork(t, networkOptions{})
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		code        uint
		msg         string
	}{
		{"malformed address", annotations("10.20.6.x", entry("10.20.6.7/24", "10.20.6.1")), 100,
			`netpin-ipam: netpin.io/allocated "10.20.6.x": "10.20.6.x" is not an IPv4 or IPv6 address`},
		{"two of one family", annotations("10.20.6.7,10.20.6.8", entry("10.20.6.7/24", "10.20.6.1")), 100,
			`netpin-ipam: netpin.io/allocated "10.20.6.7,10.20.6.8" has two IPv4 addresses (10.20.6.7 and 10.20.6.8); a pod gets at most one per family`},
		{"netpin.io/ipam absent", map[string]string{"netpin.io/allocated": "10.20.6.7"}, 101,
			"netpin-ipam: address 10.20.6.7 of netpin.io/allocated has no prefix length and gateway: the pod has no netpin.io/ipam annotation; netpin must run with --cni netpin-ipam"},
		{"address not listed", annotations("10.20.6.7"), 101,
			"netpin-ipam: address 10.20.6.7 of netpin.io/allocated has no prefix length and gateway: netpin.io/ipam does not list it; netpin must run with --cni netpin-ipam"},
		{"not JSON", map[string]string{"netpin.io/allocated": "10.20.6.7", "netpin.io/ipam": "10.20.6.7/24"}, 101,
			`netpin-ipam: netpin.io/ipam is not a JSON array of {"address","gateway"}: invalid character '.' after top-level value`},
		{"entry of another address", annotations("10.20.6.7", entry("10.20.6.7/24", "10.20.6.1"), entry("10.20.6.9/24", "10.20.6.1")), 101,
			`netpin-ipam: netpin.io/ipam lists 10.20.6.9, which is not an address of netpin.io/allocated "10.20.6.7"`},
		{"prefix invalid", annotations("10.20.6.7", entry("10.20.6.7/40", "10.20.6.1")), 101,
			`netpin-ipam: netpin.io/ipam[0].address "10.20.6.7/40" is not an address with its subnet's prefix length, like 10.20.0.7/24`},
		{"gateway missing", annotations("10.20.6.7", entry("10.20.6.7/24", "")), 101,
			"netpin-ipam: address 10.20.6.7 in netpin.io/ipam has no gateway"},
		{"gateway of another family", annotations("10.20.6.7", entry("10.20.6.7/24", "fd00::1")), 101,
			"netpin-ipam: gateway fd00::1 of address 10.20.6.7 in netpin.io/ipam is IPv6, the address IPv4"},
		{"gateway outside the subnet", annotations("10.20.6.7", entry("10.20.6.7/24", "10.20.7.1")), 101,
			"netpin-ipam: gateway 10.20.7.1 of address 10.20.6.7/24 in netpin.io/ipam is outside its subnet 10.20.6.0/24"},
		{"gateway is the address", annotations("10.20.6.7", entry("10.20.6.7/24", "10.20.6.7")), 101,
			"netpin-ipam: gateway 10.20.6.7 of address 10.20.6.7/24 in netpin.io/ipam is the address itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.add(newPod(t, tc.annotations))
			wantPluginError(t, err, tc.code, tc.msg)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, ipam, msg string }{
		{"no delegate", `{"type":"netpin-ipam"}`,
			"netpin-ipam: ipam.delegate is required: the IPAM config (e.g. host-local) for pods without a netpin address"},
		{"delegate without type", `{"type":"netpin-ipam","delegate":{"ranges":[[{"subnet":"10.244.0.0/24"}]]}}`,
			`netpin-ipam: ipam.delegate has no type (e.g. "host-local")`},
		{"route without dst", `{"type":"netpin-ipam","delegate":{"type":"host-local"},"routes":[{"gw":"10.20.0.1"}]}`,
			"netpin-ipam: ipam.routes[0] has no dst"},
		{"route dst not a CIDR", `{"type":"netpin-ipam","delegate":{"type":"host-local"},"routes":[{"dst":"default"}]}`,
			`netpin-ipam: ipam.routes[0].dst "default" is not a CIDR like 0.0.0.0/0`},
		{"route gw of another family", `{"type":"netpin-ipam","delegate":{"type":"host-local"},"routes":[{"dst":"0.0.0.0/0","gw":"fd00::1"}]}`,
			"netpin-ipam: ipam.routes[0].gw fd00::1 is IPv6 but dst 0.0.0.0/0 is IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNetwork(t, networkOptions{ipam: tc.ipam})
			for _, ann := range []map[string]string{nil, annotations("10.20.8.7", entry("10.20.8.7/24", "10.20.8.1"))} {
				_, err := n.add(newPod(t, ann))
				wantPluginError(t, err, types.ErrInvalidNetworkConfig, tc.msg)
			}
		})
	}
}

func TestDelegateMissing(t *testing.T) {
	n := newNetwork(t, networkOptions{ipam: `{"type":"netpin-ipam","delegate":{"type":"no-such-ipam"}}`})
	_, err := n.add(newPod(t, nil))
	want := fmt.Sprintf(`netpin-ipam: delegate no-such-ipam failed ADD: failed to find plugin "no-such-ipam" in path [%s]`, binDir)
	wantPluginError(t, err, types.ErrInternal, want)

	// A netpin pod never needs the delegate on ADD.
	n.mustAdd(newPod(t, annotations("10.20.9.7", entry("10.20.9.7/24", "10.20.9.1"))))
}

func TestStatus(t *testing.T) {
	n := newNetwork(t, networkOptions{})
	// bridge passes STATUS to its IPAM plugin, which passes it to host-local
	// (which has no STATUS of its own and so answers OK).
	if err := n.cni.GetStatusNetworkList(context.Background(), n.list); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
}

// TestGC runs GC on netpin-ipam directly: bridge does not pass GC to its
// IPAM plugin, but a main plugin may, and host-local releases leases of
// attachments the runtime no longer lists.
func TestGC(t *testing.T) {
	n := newNetwork(t, networkOptions{})
	p := newPod(t, nil)
	ip := n.mustAdd(p).IPs[0].Address.IP

	gc := func(valid []types.GCAttachment) {
		t.Helper()
		conf, err := libcni.InjectConf(n.list.Plugins[0], map[string]any{
			"name": n.name, "cniVersion": n.list.CNIVersion, "cni.dev/valid-attachments": valid,
		})
		if err != nil {
			t.Fatal(err)
		}
		err = invoke.ExecPluginWithoutResult(context.Background(), filepath.Join(binDir, "netpin-ipam"), conf.Bytes,
			&invoke.Args{Command: "GC", Path: binDir}, nil)
		if err != nil {
			t.Fatalf("GC: %v", err)
		}
	}
	gc([]types.GCAttachment{{ContainerID: p.rt.ContainerID, IfName: ifName}})
	if _, err := os.Stat(n.leaseFile(ip)); err != nil {
		t.Fatalf("GC released a live attachment's lease: %v", err)
	}
	gc([]types.GCAttachment{})
	if _, err := os.Stat(n.leaseFile(ip)); !os.IsNotExist(err) {
		t.Fatalf("GC kept the lease %s of an attachment no longer valid (err %v)", n.leaseFile(ip), err)
	}
}

// hostLocalRange holds every host-local subnet newNetwork configures.
var hostLocalRange = mustCIDR("10.244.0.0/16")
