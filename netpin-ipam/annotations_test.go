package main

import (
	"encoding/json"
	"errors"
	"net/netip"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// wantCNIError fails unless err is a CNI error with exactly code and msg.
func wantCNIError(t *testing.T, err error, code uint, msg string) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want CNI error %d %q", err, err, code, msg)
	}
	if e.Code != code || e.Msg != msg {
		t.Fatalf("got CNI error %d %q\nwant          %d %q", e.Code, e.Msg, code, msg)
	}
}

func TestParseAllocated(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{"10.20.0.7", []string{"10.20.0.7"}},
		{"10.20.0.7,fd00:20::7", []string{"10.20.0.7", "fd00:20::7"}},
		{" fd00:20::7 , 10.20.0.7 ", []string{"fd00:20::7", "10.20.0.7"}},
	} {
		got, err := parseAllocated(tc.in)
		if err != nil {
			t.Fatalf("parseAllocated(%q): %v", tc.in, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("parseAllocated(%q) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range got {
			if got[i].String() != tc.want[i] {
				t.Fatalf("parseAllocated(%q) = %v, want %v", tc.in, got, tc.want)
			}
		}
	}
}

func TestParseAllocatedErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"10.20.0.300", `netpin-ipam: netpin.io/allocated "10.20.0.300": "10.20.0.300" is not an IPv4 or IPv6 address`},
		{"10.20.0.7,", `netpin-ipam: netpin.io/allocated "10.20.0.7,": "" is not an IPv4 or IPv6 address`},
		{"10.20.0.7/24", `netpin-ipam: netpin.io/allocated "10.20.0.7/24": "10.20.0.7/24" is not an IPv4 or IPv6 address`},
		{"fe80::1%eth0", `netpin-ipam: netpin.io/allocated "fe80::1%eth0": "fe80::1%eth0" is not an IPv4 or IPv6 address`},
		{"::ffff:10.20.0.7", `netpin-ipam: netpin.io/allocated "::ffff:10.20.0.7": "::ffff:10.20.0.7" is not an IPv4 or IPv6 address`},
		{"10.20.0.7,10.20.0.8", `netpin-ipam: netpin.io/allocated "10.20.0.7,10.20.0.8" has two IPv4 addresses (10.20.0.7 and 10.20.0.8); a pod gets at most one per family`},
		{"fd00::7,10.20.0.7,fd00::8", `netpin-ipam: netpin.io/allocated "fd00::7,10.20.0.7,fd00::8" has two IPv6 addresses (fd00::7 and fd00::8); a pod gets at most one per family`},
	} {
		_, err := parseAllocated(tc.in)
		wantCNIError(t, err, codeBadAllocated, tc.msg)
	}
}

// ipamJSON renders netpin.io/ipam entries as the webhook writes them.
func ipamJSON(t *testing.T, entries ...ipamEntry) string {
	t.Helper()
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPodAddresses(t *testing.T) {
	got, err := podAddresses(map[string]string{
		annotationAllocated: "fd00:20::7,10.20.0.7",
		annotationIPAM: ipamJSON(t,
			ipamEntry{Address: "10.20.0.7/24", Gateway: "10.20.0.1"},
			ipamEntry{Address: "fd00:20::7/64", Gateway: "fd00:20::1"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []podAddress{
		{netip.MustParsePrefix("fd00:20::7/64"), netip.MustParseAddr("fd00:20::1")},
		{netip.MustParsePrefix("10.20.0.7/24"), netip.MustParseAddr("10.20.0.1")},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v (order of netpin.io/allocated)", got, want)
	}

	// No netpin address: the pod is the delegate's; netpin.io/ipam is not read.
	for _, ann := range []map[string]string{nil, {annotationAllocated: ""}, {annotationAllocated: "", annotationIPAM: "junk"}} {
		got, err := podAddresses(ann)
		if err != nil || got != nil {
			t.Fatalf("podAddresses(%v) = %v, %v; want none", ann, got, err)
		}
	}
}

func TestPodAddressesErrors(t *testing.T) {
	const v4 = "10.20.0.7"
	entry := func(address, gateway string) string {
		return ipamJSON(t, ipamEntry{Address: address, Gateway: gateway})
	}
	for _, tc := range []struct {
		name, allocated, ipam string
		absent                bool // netpin.io/ipam not set at all
		code                  uint
		msg                   string
	}{
		{name: "ipam annotation absent", allocated: v4, absent: true, code: codeBadIPAMAnnotation,
			msg: "netpin-ipam: address 10.20.0.7 of netpin.io/allocated has no prefix length and gateway: the pod has no netpin.io/ipam annotation; netpin must run with --cni netpin-ipam"},
		{name: "address not listed", allocated: "10.20.0.7,fd00:20::7", ipam: entry("10.20.0.7/24", "10.20.0.1"), code: codeBadIPAMAnnotation,
			msg: "netpin-ipam: address fd00:20::7 of netpin.io/allocated has no prefix length and gateway: netpin.io/ipam does not list it; netpin must run with --cni netpin-ipam"},
		{name: "empty array", allocated: v4, ipam: "[]", code: codeBadIPAMAnnotation,
			msg: "netpin-ipam: address 10.20.0.7 of netpin.io/allocated has no prefix length and gateway: netpin.io/ipam does not list it; netpin must run with --cni netpin-ipam"},
		{name: "not JSON", allocated: v4, ipam: "{10.20.0.7/24", code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: netpin.io/ipam is not a JSON array of {"address","gateway"}: invalid character '1' looking for beginning of object key string`},
		{name: "object not array", allocated: v4, ipam: `{"address":"10.20.0.7/24"}`, code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: netpin.io/ipam is not a JSON array of {"address","gateway"}: json: cannot unmarshal object into Go value of type []main.ipamEntry`},
		{name: "no prefix length", allocated: v4, ipam: entry("10.20.0.7", "10.20.0.1"), code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: netpin.io/ipam[0].address "10.20.0.7" is not an address with its subnet's prefix length, like 10.20.0.7/24`},
		{name: "prefix too long", allocated: v4, ipam: entry("10.20.0.7/33", "10.20.0.1"), code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: netpin.io/ipam[0].address "10.20.0.7/33" is not an address with its subnet's prefix length, like 10.20.0.7/24`},
		{name: "other address", allocated: v4, ipam: ipamJSON(t, ipamEntry{Address: "10.20.0.7/24", Gateway: "10.20.0.1"}, ipamEntry{Address: "10.20.0.8/24", Gateway: "10.20.0.1"}), code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: netpin.io/ipam lists 10.20.0.8, which is not an address of netpin.io/allocated "10.20.0.7"`},
		{name: "listed twice", allocated: v4, ipam: ipamJSON(t, ipamEntry{Address: "10.20.0.7/24", Gateway: "10.20.0.1"}, ipamEntry{Address: "10.20.0.7/16", Gateway: "10.20.0.1"}), code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: netpin.io/ipam lists address 10.20.0.7 twice`},
		{name: "gateway missing", allocated: v4, ipam: entry("10.20.0.7/24", ""), code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: address 10.20.0.7 in netpin.io/ipam has no gateway`},
		{name: "gateway not an address", allocated: v4, ipam: entry("10.20.0.7/24", "gw"), code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: gateway "gw" of address 10.20.0.7 in netpin.io/ipam is not an IP address`},
		{name: "gateway other family", allocated: v4, ipam: entry("10.20.0.7/24", "fd00:20::1"), code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: gateway fd00:20::1 of address 10.20.0.7 in netpin.io/ipam is IPv6, the address IPv4`},
		{name: "gateway outside subnet", allocated: v4, ipam: entry("10.20.0.7/24", "10.20.1.1"), code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: gateway 10.20.1.1 of address 10.20.0.7/24 in netpin.io/ipam is outside its subnet 10.20.0.0/24`},
		{name: "gateway is the address", allocated: v4, ipam: entry("10.20.0.7/24", "10.20.0.7"), code: codeBadIPAMAnnotation,
			msg: `netpin-ipam: gateway 10.20.0.7 of address 10.20.0.7/24 in netpin.io/ipam is the address itself`},
		{name: "bad allocated", allocated: "ten", ipam: entry("10.20.0.7/24", "10.20.0.1"), code: codeBadAllocated,
			msg: `netpin-ipam: netpin.io/allocated "ten": "ten" is not an IPv4 or IPv6 address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ann := map[string]string{annotationAllocated: tc.allocated}
			if !tc.absent {
				ann[annotationIPAM] = tc.ipam
			}
			_, err := podAddresses(ann)
			wantCNIError(t, err, tc.code, tc.msg)
		})
	}
}
