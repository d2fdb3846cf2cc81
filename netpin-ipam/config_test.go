package main

import (
	"encoding/json"
	"net"
	"net/netip"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

const delegateHostLocal = `{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24"}]]}`

func stdin(ipam string) []byte {
	return []byte(`{"cniVersion":"1.0.0","name":"net","type":"bridge","ipam":` + ipam + `}`)
}

func TestLoadConf(t *testing.T) {
	c, err := loadConf([]byte(`{"cniVersion":"1.1.0","name":"net","type":"bridge",
		"ipam":{"type":"netpin-ipam","delegate":` + delegateHostLocal + `,
		        "routes":[{"dst":"10.99.1.0/16"},{"dst":"::/0","gw":"fd00::9","mtu":1400}]},
		"runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"netpin.io/allocated":"10.20.0.7"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.CNIVersion != "1.1.0" || c.DelegateType != "host-local" || string(c.Delegate) != delegateHostLocal {
		t.Fatalf("got %+v", c)
	}
	if ann, err := c.annotations(); err != nil || ann[annotationAllocated] != "10.20.0.7" {
		t.Fatalf("annotations %v, %v", ann, err)
	}
	if len(c.Routes) != 2 || c.Routes[0].Dst != netip.MustParsePrefix("10.99.0.0/16") || c.Routes[0].GW.IsValid() ||
		c.Routes[1].GW != netip.MustParseAddr("fd00::9") || c.Routes[1].conf.MTU != 1400 {
		t.Fatalf("routes %+v", c.Routes)
	}

	c, err = loadConf(stdin(`{"type":"netpin-ipam","delegate":` + delegateHostLocal + `}`))
	if err != nil || len(c.Routes) != 2 || c.Routes[0].Dst.String() != "0.0.0.0/0" || c.Routes[1].Dst.String() != "::/0" {
		t.Fatalf("default routes: %+v %v", c, err)
	}
	c, err = loadConf(stdin(`{"type":"netpin-ipam","delegate":` + delegateHostLocal + `,"routes":[]}`))
	if err != nil || len(c.Routes) != 0 {
		t.Fatalf("empty routes: %+v %v", c, err)
	}
}

func TestLoadConfErrors(t *testing.T) {
	for _, tc := range []struct {
		stdin []byte
		code  uint
		msg   string
	}{
		{[]byte(`{"cniVersion":"1.0.0","name":"net","type":"bridge"}`), types.ErrInvalidNetworkConfig,
			"netpin-ipam: config has no ipam section"},
		{[]byte(`{"ipam":{"type":"netpin-ipam","routes":{}}}`), types.ErrDecodingFailure,
			"netpin-ipam: config is not valid JSON for this plugin: json: cannot unmarshal object into Go struct field ipamConf.ipam.routes of type []main.routeConf"},
		{stdin(`{"type":"netpin-ipam"}`), types.ErrInvalidNetworkConfig,
			"netpin-ipam: ipam.delegate is required: the IPAM config (e.g. host-local) for pods without a netpin address"},
		{stdin(`{"type":"netpin-ipam","delegate":"host-local"}`), types.ErrInvalidNetworkConfig,
			"netpin-ipam: ipam.delegate must be a JSON object with a type: json: cannot unmarshal string into Go value of type struct { Type string \"json:\\\"type\\\"\" }"},
		{stdin(`{"type":"netpin-ipam","delegate":{"ranges":[]}}`), types.ErrInvalidNetworkConfig,
			`netpin-ipam: ipam.delegate has no type (e.g. "host-local")`},
		{stdin(`{"type":"netpin-ipam","delegate":{"type":"netpin-ipam"}}`), types.ErrInvalidNetworkConfig,
			"netpin-ipam: ipam.delegate.type must not be netpin-ipam itself"},
		{stdin(`{"type":"netpin-ipam","delegate":` + delegateHostLocal + `,"routes":[{"gw":"10.0.0.1"}]}`), types.ErrInvalidNetworkConfig,
			"netpin-ipam: ipam.routes[0] has no dst"},
		{stdin(`{"type":"netpin-ipam","delegate":` + delegateHostLocal + `,"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.0.0.0"}]}`), types.ErrInvalidNetworkConfig,
			`netpin-ipam: ipam.routes[1].dst "10.0.0.0" is not a CIDR like 0.0.0.0/0`},
		{stdin(`{"type":"netpin-ipam","delegate":` + delegateHostLocal + `,"routes":[{"dst":"0.0.0.0/0","gw":"gw"}]}`), types.ErrInvalidNetworkConfig,
			`netpin-ipam: ipam.routes[0].gw "gw" is not an IP address`},
		{stdin(`{"type":"netpin-ipam","delegate":` + delegateHostLocal + `,"routes":[{"dst":"::/0","gw":"10.0.0.1"}]}`), types.ErrInvalidNetworkConfig,
			"netpin-ipam: ipam.routes[0].gw 10.0.0.1 is IPv4 but dst ::/0 is IPv6"},
	} {
		_, err := loadConf(tc.stdin)
		wantCNIError(t, err, tc.code, tc.msg)
	}
}

func TestAnnotations(t *testing.T) {
	c, err := loadConf([]byte(`{"ipam":{"type":"netpin-ipam","delegate":{"type":"host-local"}},
		"runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"netpin.io/allocated":7}}}`))
	if err != nil {
		t.Fatalf("a malformed annotation map must not fail loading the config (DEL reads none): %v", err)
	}
	_, err = c.annotations()
	wantCNIError(t, err, types.ErrDecodingFailure,
		`netpin-ipam: runtimeConfig["io.kubernetes.cri.pod-annotations"] is not an object of strings: json: cannot unmarshal number into Go value of type string`)

	c, _ = loadConf(stdin(`{"type":"netpin-ipam","delegate":{"type":"host-local"}}`))
	if ann, err := c.annotations(); err != nil || ann != nil {
		t.Fatalf("no runtimeConfig: %v, %v; want none", ann, err)
	}
}

func TestNetpinResult(t *testing.T) {
	v4 := podAddress{netip.MustParsePrefix("10.20.0.7/24"), netip.MustParseAddr("10.20.0.1")}
	v6 := podAddress{netip.MustParsePrefix("fd00:20::7/64"), netip.MustParseAddr("fd00:20::1")}
	render := func(c *pluginConf, addrs ...podAddress) string {
		b, err := json.Marshal(netpinResult(c, addrs))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	dflt := &pluginConf{Routes: defaultRoutes}
	for _, tc := range []struct {
		conf  *pluginConf
		addrs []podAddress
		want  string
	}{
		{dflt, []podAddress{v4},
			`{"cniVersion":"1.1.0","ips":[{"address":"10.20.0.7/24","gateway":"10.20.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.20.0.1"}]}`},
		{dflt, []podAddress{v6, v4},
			`{"cniVersion":"1.1.0","ips":[{"address":"fd00:20::7/64","gateway":"fd00:20::1"},{"address":"10.20.0.7/24","gateway":"10.20.0.1"}],` +
				`"routes":[{"dst":"0.0.0.0/0","gw":"10.20.0.1"},{"dst":"::/0","gw":"fd00:20::1"}]}`},
		// Only routes of a family the pod has; an explicit gw wins.
		{&pluginConf{Routes: []route{
			{Dst: netip.MustParsePrefix("10.99.0.0/16"), conf: routeConf{Priority: 5}},
			{Dst: netip.MustParsePrefix("10.98.0.0/16"), GW: netip.MustParseAddr("10.20.0.254")},
			{Dst: netip.MustParsePrefix("::/0")},
		}}, []podAddress{v4},
			`{"cniVersion":"1.1.0","ips":[{"address":"10.20.0.7/24","gateway":"10.20.0.1"}],` +
				`"routes":[{"dst":"10.99.0.0/16","gw":"10.20.0.1","priority":5},{"dst":"10.98.0.0/16","gw":"10.20.0.254"}]}`},
		{&pluginConf{}, []podAddress{v6},
			`{"cniVersion":"1.1.0","ips":[{"address":"fd00:20::7/64","gateway":"fd00:20::1"}]}`},
	} {
		if got := render(tc.conf, tc.addrs...); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestPrefixOf(t *testing.T) {
	for _, tc := range []struct {
		ip   net.IP
		mask net.IPMask
		want string
	}{
		{net.ParseIP("10.20.0.7"), net.CIDRMask(24, 32), "10.20.0.7/24"},
		{net.ParseIP("10.20.0.7"), net.CIDRMask(120, 128), "10.20.0.7/24"},
		{net.ParseIP("fd00::7"), net.CIDRMask(64, 128), "fd00::7/64"},
	} {
		got, ok := prefixOf(tc.ip, tc.mask)
		if !ok || got.String() != tc.want {
			t.Errorf("prefixOf(%v, %v) = %v, %v; want %s", tc.ip, tc.mask, got, ok, tc.want)
		}
	}
	if _, ok := prefixOf(net.ParseIP("10.0.0.1"), nil); ok {
		t.Error("prefixOf with no mask must fail")
	}
}

func TestDelegateStdin(t *testing.T) {
	in := []byte(`{"cniVersion":"1.0.0","name":"net","type":"bridge","ipam":{"type":"netpin-ipam","delegate":{"type":"host-local"}},` +
		`"runtimeConfig":{"x":1},"prevResult":{"ips":[]},"cni.dev/valid-attachments":[]}`)
	out, err := delegateStdin(in, json.RawMessage(`{"type":"host-local"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cni.dev/valid-attachments":[],"cniVersion":"1.0.0","ipam":{"type":"host-local"},"name":"net","prevResult":{"ips":[]},"runtimeConfig":{"x":1},"type":"bridge"}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
}
