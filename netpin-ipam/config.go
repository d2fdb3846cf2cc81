package main

import (
	"encoding/json"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
)

// capabilityPodAnnotations is the capability under which containerd passes
// every pod annotation in runtimeConfig (containerd
// internal/cri/server/sandbox_run.go, cniNamespaceOpts / WithCapability).
const capabilityPodAnnotations = "io.kubernetes.cri.pod-annotations"

// netConf is the part of the main plugin's config this plugin reads. The
// main plugin (bridge, macvlan, ...) passes its whole stdin to its IPAM
// plugin, runtimeConfig included.
type netConf struct {
	CNIVersion    string        `json:"cniVersion"`
	Name          string        `json:"name"`
	IPAM          *ipamConf     `json:"ipam"`
	RuntimeConfig runtimeConfig `json:"runtimeConfig"`
}

// runtimeConfig keeps the annotations raw: only ADD and CHECK read them,
// and DEL must not fail on them whatever their shape.
type runtimeConfig struct {
	PodAnnotations json.RawMessage `json:"io.kubernetes.cri.pod-annotations"`
}

// ipamConf is the "ipam" section naming this plugin.
type ipamConf struct {
	Type     string          `json:"type"`
	Delegate json.RawMessage `json:"delegate"`
	// Routes is a pointer so that an absent list (default routes) differs
	// from an empty one (no routes).
	Routes *[]routeConf `json:"routes"`
}

// routeConf is a route as written in the config; the fields match
// types.Route's JSON so a CNI user writes routes as everywhere else.
type routeConf struct {
	Dst      string `json:"dst"`
	GW       string `json:"gw,omitempty"`
	MTU      int    `json:"mtu,omitempty"`
	AdvMSS   int    `json:"advmss,omitempty"`
	Priority int    `json:"priority,omitempty"`
	Table    *int   `json:"table,omitempty"`
	Scope    *int   `json:"scope,omitempty"`
}

// route is a validated routeConf.
type route struct {
	Dst  netip.Prefix
	GW   netip.Addr // invalid (zero) when the config gives none
	conf routeConf
}

// pluginConf is the validated configuration.
type pluginConf struct {
	CNIVersion     string
	DelegateType   string
	Delegate       json.RawMessage
	Routes         []route
	PodAnnotations json.RawMessage // runtimeConfig's, undecoded
}

// annotations decodes the pod annotations containerd passed; none when the
// capability was not passed.
func (c *pluginConf) annotations() (map[string]string, error) {
	var m map[string]string
	if len(c.PodAnnotations) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(c.PodAnnotations, &m); err != nil {
		return nil, errorf(types.ErrDecodingFailure, "runtimeConfig[%q] is not an object of strings: %v", capabilityPodAnnotations, err)
	}
	return m, nil
}

// defaultRoutes are returned when the config has no "routes".
var defaultRoutes = []route{
	{Dst: netip.MustParsePrefix("0.0.0.0/0")},
	{Dst: netip.MustParsePrefix("::/0")},
}

// loadConf parses and validates stdin. Errors name the offending field.
func loadConf(stdin []byte) (*pluginConf, error) {
	var n netConf
	if err := json.Unmarshal(stdin, &n); err != nil {
		return nil, errorf(types.ErrDecodingFailure, "config is not valid JSON for this plugin: %v", err)
	}
	if n.IPAM == nil {
		return nil, configErrorf("config has no ipam section")
	}
	delegateType, err := delegateTypeOf(n.IPAM.Delegate)
	if err != nil {
		return nil, err
	}
	c := &pluginConf{
		CNIVersion:     n.CNIVersion,
		DelegateType:   delegateType,
		Delegate:       n.IPAM.Delegate,
		PodAnnotations: n.RuntimeConfig.PodAnnotations,
	}
	if n.IPAM.Routes == nil {
		c.Routes = defaultRoutes
		return c, nil
	}
	for i, rc := range *n.IPAM.Routes {
		r, err := parseRoute(i, rc)
		if err != nil {
			return nil, err
		}
		c.Routes = append(c.Routes, r)
	}
	return c, nil
}

func delegateTypeOf(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", configErrorf("ipam.delegate is required: the IPAM config (e.g. host-local) for pods without a netpin address")
	}
	var d struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return "", configErrorf("ipam.delegate must be a JSON object with a type: %v", err)
	}
	switch d.Type {
	case "":
		return "", configErrorf("ipam.delegate has no type (e.g. \"host-local\")")
	case "netpin-ipam":
		return "", configErrorf("ipam.delegate.type must not be netpin-ipam itself")
	}
	return d.Type, nil
}

func parseRoute(i int, rc routeConf) (route, error) {
	if rc.Dst == "" {
		return route{}, configErrorf("ipam.routes[%d] has no dst", i)
	}
	dst, err := netip.ParsePrefix(rc.Dst)
	if err != nil || dst.Addr().Zone() != "" {
		return route{}, configErrorf("ipam.routes[%d].dst %q is not a CIDR like 0.0.0.0/0", i, rc.Dst)
	}
	r := route{Dst: dst.Masked(), conf: rc}
	if rc.GW == "" {
		return r, nil
	}
	gw, err := netip.ParseAddr(rc.GW)
	if err != nil || gw.Zone() != "" {
		return route{}, configErrorf("ipam.routes[%d].gw %q is not an IP address", i, rc.GW)
	}
	if gw.Is4() != dst.Addr().Is4() {
		return route{}, configErrorf("ipam.routes[%d].gw %s is %s but dst %s is %s", i, gw, family(gw), dst, family(dst.Addr()))
	}
	r.GW = gw
	return r, nil
}

// ipNet converts a prefix to net.IPNet keeping the unmasked address, as
// an IPConfig.Address holds it.
func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// toTypesRoute turns a route into a result route through pod's gateway
// when the config gives none. Plugins' pkg/ipam ConfigureIface
// (plugins pkg/ipam/ipam_linux.go) would fill the same gateway in for a route
// without gw; writing it into the result makes the result say what is
// installed, for main plugins that do not use ConfigureIface too.
func toTypesRoute(r route, podGW netip.Addr) *types.Route {
	gw := r.GW
	if !gw.IsValid() {
		gw = podGW
	}
	return &types.Route{
		Dst:      ipNet(r.Dst),
		GW:       net.IP(gw.AsSlice()),
		MTU:      r.conf.MTU,
		AdvMSS:   r.conf.AdvMSS,
		Priority: r.conf.Priority,
		Table:    r.conf.Table,
		Scope:    r.conf.Scope,
	}
}

// prefixOf is the inverse of ipNet: the address (unmasked) with the mask's
// length. IPv4 may come in 16-byte form from netlink or JSON decoding.
func prefixOf(ip net.IP, mask net.IPMask) (netip.Prefix, bool) {
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	addr, ok := netip.AddrFromSlice(ip)
	ones, bits := mask.Size()
	if !ok || bits == 0 {
		return netip.Prefix{}, false
	}
	if addr.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(addr, ones), true
}
