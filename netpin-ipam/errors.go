package main

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// Plugin-specific CNI error codes. The spec reserves 0-99 for itself
// (cni pkg/types/types.go lists them); 100 and above belong to the plugin.
const (
	// codeBadAllocated: netpin.io/allocated is not a list of addresses, at
	// most one per family.
	codeBadAllocated uint = 100
	// codeBadIPAMAnnotation: netpin.io/ipam is missing, not JSON, or does not
	// give a usable prefix length and gateway for an address.
	codeBadIPAMAnnotation uint = 101
	// codeCheckFailed: CHECK found the pod's addresses missing from
	// prevResult or from the interface.
	codeCheckFailed uint = 102
)

// errorf builds a CNI error whose message starts with the plugin's name, so
// the kubelet's pod event says which plugin failed.
func errorf(code uint, format string, args ...any) *types.Error {
	return types.NewError(code, "netpin-ipam: "+fmt.Sprintf(format, args...), "")
}

// configErrorf is an error in the plugin's own configuration (the ipam section).
func configErrorf(format string, args ...any) *types.Error {
	return errorf(types.ErrInvalidNetworkConfig, format, args...)
}

// delegateError says which delegate failed on which command and keeps the
// delegate's code, so a runtime that reacts to a code (e.g. 11, try again
// later) still sees it.
func delegateError(command, delegateType string, err error) *types.Error {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		return types.NewError(cniErr.Code,
			fmt.Sprintf("netpin-ipam: delegate %s failed %s: %s", delegateType, command, cniErr.Msg), cniErr.Details)
	}
	return errorf(types.ErrInternal, "delegate %s failed %s: %v", delegateType, command, err)
}
