package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
)

const (
	capability = "io.kubernetes.cri.pod-annotations"
	ifName     = "eth0"
)

var bridgeSeq atomic.Int32

// network is one conflist (bridge + netpin-ipam delegating to host-local)
// on its own bridge, removed when the test ends.
type network struct {
	t       *testing.T
	cni     *libcni.CNIConfig
	list    *libcni.NetworkConfigList
	name    string
	dataDir string // host-local's dataDir
}

// networkOptions vary the conflist; zero values give the usual config.
type networkOptions struct {
	// ipam replaces the whole ipam section when set.
	ipam string
	// routes, when set, is the raw JSON of ipam.routes.
	routes string
}

// newNetwork writes a conflist whose bridge declares the pod-annotations
// capability, as a node's conflist must for containerd to pass
// annotations. isGateway stays off so that the test changes no host sysctl
// (ip_forward); the container's routes via the gateway are installed anyway.
func newNetwork(t *testing.T, opts networkOptions) *network {
	t.Helper()
	seq := bridgeSeq.Add(1)
	br := fmt.Sprintf("npi%d-%d", os.Getpid()%100000, seq)
	name := fmt.Sprintf("netpin-test-%d", seq)
	dataDir := t.TempDir()
	ipam := opts.ipam
	if ipam == "" {
		routes := ""
		if opts.routes != "" {
			routes = `,"routes":` + opts.routes
		}
		ipam = fmt.Sprintf(`{"type":"netpin-ipam",
			"delegate":{"type":"host-local","ranges":[[{"subnet":"10.244.%d.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}%s}`,
			seq, dataDir, routes)
	}
	conflist := fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"plugins":[{"type":"bridge","bridge":%q,
		"capabilities":{%q:true},"ipam":%s}]}`, name, br, capability, ipam)
	list, err := libcni.NetworkConfFromBytes([]byte(conflist))
	if err != nil {
		t.Fatalf("conflist: %v\n%s", err, conflist)
	}
	t.Cleanup(func() {
		if link, err := netlink.LinkByName(br); err == nil {
			if err := netlink.LinkDel(link); err != nil {
				t.Errorf("removing bridge %s: %v", br, err)
			}
		}
	})
	return &network{
		t:       t,
		cni:     libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil),
		list:    list,
		name:    name,
		dataDir: dataDir,
	}
}

// pod is one sandbox: a fresh netns and its runtime config.
type pod struct {
	ns ns.NetNS
	rt *libcni.RuntimeConf
}

var podSeq atomic.Int32

// newPod makes a netns, removed when the test ends, and a RuntimeConf
// passing annotations the way containerd does (CapabilityArgs).
func newPod(t *testing.T, annotations map[string]string) *pod {
	t.Helper()
	netns, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("creating netns: %v", err)
	}
	t.Cleanup(func() {
		_ = netns.Close()
		if err := testutils.UnmountNS(netns); err != nil {
			t.Errorf("removing netns: %v", err)
		}
	})
	rt := &libcni.RuntimeConf{
		ContainerID: fmt.Sprintf("ctr-%d-%d", os.Getpid(), podSeq.Add(1)),
		NetNS:       netns.Path(),
		IfName:      ifName,
	}
	if annotations != nil {
		rt.CapabilityArgs = map[string]any{capability: annotations}
	}
	return &pod{ns: netns, rt: rt}
}

// withAnnotations is the same sandbox seen with other annotations.
func (p *pod) withAnnotations(annotations map[string]string) *libcni.RuntimeConf {
	rt := *p.rt
	rt.CapabilityArgs = nil
	if annotations != nil {
		rt.CapabilityArgs = map[string]any{capability: annotations}
	}
	return &rt
}

func (n *network) add(p *pod) (*current.Result, error) {
	r, err := n.cni.AddNetworkList(context.Background(), n.list, p.rt)
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(r)
}

func (n *network) mustAdd(p *pod) *current.Result {
	n.t.Helper()
	r, err := n.add(p)
	if err != nil {
		n.t.Fatalf("ADD: %v", err)
	}
	return r
}

func (n *network) check(rt *libcni.RuntimeConf) error {
	return n.cni.CheckNetworkList(context.Background(), n.list, rt)
}

func (n *network) del(rt *libcni.RuntimeConf) error {
	return n.cni.DelNetworkList(context.Background(), n.list, rt)
}

// leaseFile is where host-local records a reservation of ip.
func (n *network) leaseFile(ip net.IP) string {
	return filepath.Join(n.dataDir, n.name, ip.String())
}

// annotations as netpin's webhook writes them.
func annotations(allocated string, entries ...string) map[string]string {
	return map[string]string{
		"netpin.io/allocated": allocated,
		"netpin.io/ipam":      "[" + strings.Join(entries, ",") + "]",
	}
}

func entry(address, gateway string) string {
	b, _ := json.Marshal(map[string]string{"address": address, "gateway": gateway})
	return string(b)
}

// resultIPs lists the result's addresses as CIDR strings.
func resultIPs(r *current.Result) []string {
	var out []string
	for _, ip := range r.IPs {
		out = append(out, ip.Address.String())
	}
	return out
}

// ifaceAddrs lists the global addresses of eth0 inside the pod's netns.
func ifaceAddrs(t *testing.T, p *pod) []string {
	t.Helper()
	var out []string
	err := p.ns.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				out = append(out, a.IPNet.String())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing addresses of %s: %v", ifName, err)
	}
	return out
}

// defaultGateway is the gateway of eth0's default route of the family in
// the pod's netns, or nil.
func defaultGateway(t *testing.T, p *pod, family int) net.IP {
	t.Helper()
	var gw net.IP
	err := p.ns.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		routes, err := netlink.RouteList(link, family)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || (r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) {
				gw = r.Gw
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing routes: %v", err)
	}
	return gw
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// wantPluginError fails unless err carries a CNI error with code and msg
// (libcni wraps the plugin's error; the kubelet shows msg in pod events).
func wantPluginError(t *testing.T, err error, code uint, msg string) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want CNI error %d %q", err, code, msg)
	}
	if e.Code != code || e.Msg != msg {
		t.Fatalf("got CNI error %d %q\nwant          %d %q", e.Code, e.Msg, code, msg)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, " ") == strings.Join(b, " ")
}
