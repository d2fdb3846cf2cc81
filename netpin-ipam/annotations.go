package main

import (
	"encoding/json"
	"net/netip"
	"strings"
)

// Pod annotations written by netpin's admission webhook.
const (
	annotationAllocated = "netpin.io/allocated"
	annotationIPAM      = "netpin.io/ipam"
)

// missingHint ends every error about netpin.io/ipam lacking an address:
// netpin writes that annotation only when it knows this plugin consumes it.
const missingHint = "netpin must run with --cni netpin-ipam"

// podAddress is one netpin address of a pod as the interface must carry it.
type podAddress struct {
	// Prefix is the pod's address (not masked) with the prefix length of
	// the subnet it sits in, e.g. 10.20.0.7/24.
	Prefix  netip.Prefix
	Gateway netip.Addr
}

// ipamEntry is one element of the netpin.io/ipam JSON array.
type ipamEntry struct {
	Address string `json:"address"`
	Gateway string `json:"gateway"`
}

// family names an address family for messages.
func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// parseAllocated parses netpin.io/allocated: comma-separated addresses, at
// most one per family. An empty value yields no addresses.
func parseAllocated(value string) ([]netip.Addr, error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	var addrs []netip.Addr
	for _, field := range strings.Split(value, ",") {
		field = strings.TrimSpace(field)
		addr, err := netip.ParseAddr(field)
		if err != nil || addr.Zone() != "" || addr.Is4In6() {
			return nil, errorf(codeBadAllocated, "%s %q: %q is not an IPv4 or IPv6 address", annotationAllocated, value, field)
		}
		for _, seen := range addrs {
			if seen.Is4() == addr.Is4() {
				return nil, errorf(codeBadAllocated, "%s %q has two %s addresses (%s and %s); a pod gets at most one per family",
					annotationAllocated, value, family(addr), seen, addr)
			}
		}
		addrs = append(addrs, addr)
	}
	return addrs, nil
}

// parseIPAM parses the netpin.io/ipam JSON array into prefix and gateway per
// address, checking each entry on its own (syntax, gateway family and subnet).
func parseIPAM(value string) (map[netip.Addr]podAddress, error) {
	var entries []ipamEntry
	if err := json.Unmarshal([]byte(value), &entries); err != nil {
		return nil, errorf(codeBadIPAMAnnotation, "%s is not a JSON array of {\"address\",\"gateway\"}: %v", annotationIPAM, err)
	}
	byAddr := make(map[netip.Addr]podAddress, len(entries))
	for i, e := range entries {
		prefix, err := netip.ParsePrefix(e.Address)
		if err != nil || prefix.Addr().Zone() != "" {
			return nil, errorf(codeBadIPAMAnnotation, "%s[%d].address %q is not an address with its subnet's prefix length, like 10.20.0.7/24",
				annotationIPAM, i, e.Address)
		}
		addr := prefix.Addr()
		if _, dup := byAddr[addr]; dup {
			return nil, errorf(codeBadIPAMAnnotation, "%s lists address %s twice", annotationIPAM, addr)
		}
		if e.Gateway == "" {
			return nil, errorf(codeBadIPAMAnnotation, "address %s in %s has no gateway", addr, annotationIPAM)
		}
		gw, err := netip.ParseAddr(e.Gateway)
		if err != nil || gw.Zone() != "" {
			return nil, errorf(codeBadIPAMAnnotation, "gateway %q of address %s in %s is not an IP address", e.Gateway, addr, annotationIPAM)
		}
		switch {
		case gw.Is4() != addr.Is4():
			return nil, errorf(codeBadIPAMAnnotation, "gateway %s of address %s in %s is %s, the address %s",
				gw, addr, annotationIPAM, family(gw), family(addr))
		case !prefix.Contains(gw):
			return nil, errorf(codeBadIPAMAnnotation, "gateway %s of address %s in %s is outside its subnet %s",
				gw, prefix, annotationIPAM, prefix.Masked())
		case gw == addr:
			return nil, errorf(codeBadIPAMAnnotation, "gateway %s of address %s in %s is the address itself", gw, prefix, annotationIPAM)
		}
		byAddr[addr] = podAddress{Prefix: prefix, Gateway: gw}
	}
	return byAddr, nil
}

// podAddresses returns the pod's netpin addresses, in the order of
// netpin.io/allocated, or none when the pod has no netpin address (it is then
// the delegate's to address).
func podAddresses(annotations map[string]string) ([]podAddress, error) {
	allocated, err := parseAllocated(annotations[annotationAllocated])
	if err != nil || len(allocated) == 0 {
		return nil, err
	}
	rawIPAM, present := annotations[annotationIPAM]
	if !present {
		return nil, errorf(codeBadIPAMAnnotation, "address %s of %s has no prefix length and gateway: the pod has no %s annotation; %s",
			allocated[0], annotationAllocated, annotationIPAM, missingHint)
	}
	byAddr, err := parseIPAM(rawIPAM)
	if err != nil {
		return nil, err
	}
	result := make([]podAddress, 0, len(allocated))
	for _, addr := range allocated {
		pa, ok := byAddr[addr]
		if !ok {
			return nil, errorf(codeBadIPAMAnnotation, "address %s of %s has no prefix length and gateway: %s does not list it; %s",
				addr, annotationAllocated, annotationIPAM, missingHint)
		}
		result = append(result, pa)
		delete(byAddr, addr)
	}
	// An entry for an address the pod does not have means the two
	// annotations disagree; trusting either would be a guess.
	for addr := range byAddr {
		return nil, errorf(codeBadIPAMAnnotation, "%s lists %s, which is not an address of %s %q",
			annotationIPAM, addr, annotationAllocated, annotations[annotationAllocated])
	}
	return result, nil
}
