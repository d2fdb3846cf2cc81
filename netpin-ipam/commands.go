package main

import (
	"context"
	"encoding/json"
	"net/netip"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// cmdAdd returns the pod's netpin addresses, or the delegate's result for a
// pod without one.
func cmdAdd(args *skel.CmdArgs) error {
	conf, addrs, delegated, err := loadPod(args)
	if err != nil {
		return err
	}
	if delegated != nil {
		result, err := invoke.DelegateAdd(context.TODO(), conf.DelegateType, delegated, nil)
		if err != nil {
			return delegateError("ADD", conf.DelegateType, err)
		}
		return types.PrintResult(result, conf.CNIVersion)
	}
	return types.PrintResult(netpinResult(conf, addrs), conf.CNIVersion)
}

// loadPod reads the config and the pod's netpin addresses; for a pod without
// any, it returns instead the config its delegate is to be called with.
func loadPod(args *skel.CmdArgs) (*pluginConf, []podAddress, []byte, error) {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return nil, nil, nil, err
	}
	addrs, err := conf.podAddresses()
	if err != nil || len(addrs) > 0 {
		return conf, addrs, nil, err
	}
	delegated, err := delegateStdin(args.StdinData, conf.Delegate)
	return conf, nil, delegated, err
}

// podAddresses are the pod's netpin addresses from the annotations in
// runtimeConfig; none for a pod the delegate addresses.
func (c *pluginConf) podAddresses() ([]podAddress, error) {
	annotations, err := c.annotations()
	if err != nil {
		return nil, err
	}
	return podAddresses(annotations)
}

// netpinResult is the ADD result for a pod netpin addressed: one IPConfig
// per address, and the configured routes whose family the pod has.
func netpinResult(conf *pluginConf, addrs []podAddress) *current.Result {
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	for _, a := range addrs {
		gw := a.Gateway.AsSlice()
		result.IPs = append(result.IPs, &current.IPConfig{Address: ipNet(a.Prefix), Gateway: gw})
	}
	for _, r := range conf.Routes {
		for _, a := range addrs {
			if a.Prefix.Addr().Is4() == r.Dst.Addr().Is4() {
				result.Routes = append(result.Routes, toTypesRoute(r, a.Gateway))
			}
		}
	}
	return result
}

// cmdDel always passes DEL to the delegate. The delegate releases by
// container id and interface (host-local: plugins
// plugins/ipam/host-local/backend/disk/backend.go ReleaseByID), which is a
// no-op for a pod netpin addressed. Deciding by the annotations instead
// would leak a lease whenever they changed between ADD and DEL, and DEL
// must not depend on annotations being present at all.
func cmdDel(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	delegated, err := delegateStdin(args.StdinData, conf.Delegate)
	if err != nil {
		return err
	}
	if err := invoke.DelegateDel(context.TODO(), conf.DelegateType, delegated, nil); err != nil {
		return delegateError("DEL", conf.DelegateType, err)
	}
	return nil
}

// cmdCheck verifies a netpin-addressed pod's addresses in prevResult and on
// the interface; a delegated pod's CHECK is the delegate's.
func cmdCheck(args *skel.CmdArgs) error {
	conf, addrs, delegated, err := loadPod(args)
	if err != nil {
		return err
	}
	if delegated != nil {
		if err := invoke.DelegateCheck(context.TODO(), conf.DelegateType, delegated, nil); err != nil {
			return delegateError("CHECK", conf.DelegateType, err)
		}
		return nil
	}
	if err := checkPrevResult(args.StdinData, addrs); err != nil {
		return err
	}
	return checkInterface(args.Netns, args.IfName, addrs)
}

// checkPrevResult requires prevResult to list exactly the pod's addresses,
// each with its prefix length.
func checkPrevResult(stdin []byte, addrs []podAddress) error {
	var pc types.PluginConf
	if err := json.Unmarshal(stdin, &pc); err != nil {
		return errorf(types.ErrDecodingFailure, "config is not valid JSON: %v", err)
	}
	if pc.RawPrevResult == nil {
		return errorf(types.ErrInvalidNetworkConfig, "CHECK needs a prevResult")
	}
	if err := version.ParsePrevResult(&pc); err != nil {
		return errorf(types.ErrDecodingFailure, "CHECK: prevResult: %v", err)
	}
	prev, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return errorf(types.ErrDecodingFailure, "CHECK: prevResult: %v", err)
	}
	want := make(map[netip.Prefix]bool, len(addrs))
	for _, a := range addrs {
		want[a.Prefix] = true
	}
	listed := make(map[netip.Prefix]bool)
	for _, ipc := range prev.IPs {
		p, ok := prefixOf(ipc.Address.IP, ipc.Address.Mask)
		if !ok || !want[p] {
			return errorf(codeCheckFailed, "CHECK: prevResult lists %s, which is not a netpin address of the pod (%s)",
				ipc.Address.String(), prefixList(addrs))
		}
		listed[p] = true
	}
	for _, a := range addrs {
		if !listed[a.Prefix] {
			return errorf(codeCheckFailed, "CHECK: prevResult lacks %s of %s", a.Prefix, annotationAllocated)
		}
	}
	return nil
}

// checkInterface requires the interface inside the pod's netns to carry
// every netpin address with its prefix length.
func checkInterface(netnsPath, ifName string, addrs []podAddress) error {
	return ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		link, err := netlink.LinkByName(ifName)
		if err != nil {
			return errorf(codeCheckFailed, "CHECK: no interface %s in %s: %v", ifName, netnsPath, err)
		}
		onLink, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return errorf(types.ErrInternal, "CHECK: listing addresses of %s in %s: %v", ifName, netnsPath, err)
		}
		have := make(map[netip.Prefix]bool, len(onLink))
		for _, a := range onLink {
			if p, ok := prefixOf(a.IP, a.Mask); ok {
				have[p] = true
			}
		}
		for _, a := range addrs {
			if !have[a.Prefix] {
				return errorf(codeCheckFailed, "CHECK: interface %s in %s lacks %s of %s", ifName, netnsPath, a.Prefix, annotationAllocated)
			}
		}
		return nil
	})
}

// cmdStatus and cmdGC pass to the delegate: its readiness is the plugin's
// (host-local keeps its leases on disk), and GC releases leases of
// attachments that no longer exist, which only the delegate holds. A
// delegate older than CNI 1.1 answers code 1 (incompatible version); that
// means it has nothing to report, so the command succeeds.
func cmdStatus(args *skel.CmdArgs) error {
	return passOptional(args, "STATUS", invoke.DelegateStatus)
}

func cmdGC(args *skel.CmdArgs) error {
	return passOptional(args, "GC", invoke.DelegateGC)
}

type delegateFunc func(ctx context.Context, plugin string, netconf []byte, exec invoke.Exec) error

func passOptional(args *skel.CmdArgs, command string, call delegateFunc) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	delegated, err := delegateStdin(args.StdinData, conf.Delegate)
	if err != nil {
		return err
	}
	err = call(context.TODO(), conf.DelegateType, delegated, nil)
	if err == nil || errIsCode(err, types.ErrIncompatibleCNIVersion) {
		return nil
	}
	return delegateError(command, conf.DelegateType, err)
}

// delegateStdin is our stdin with "ipam" replaced by the delegate's config;
// everything else (cniVersion, name, runtimeConfig, prevResult,
// cni.dev/valid-attachments, ...) is kept, since the delegate reads it as
// it would from a main plugin.
func delegateStdin(stdin []byte, delegate json.RawMessage) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &fields); err != nil {
		return nil, errorf(types.ErrDecodingFailure, "config is not a JSON object: %v", err)
	}
	fields["ipam"] = delegate
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, errorf(types.ErrInternal, "building the delegate's config: %v", err)
	}
	return out, nil
}

func errIsCode(err error, code uint) bool {
	e, ok := err.(*types.Error)
	return ok && e.Code == code
}

func prefixList(addrs []podAddress) string {
	s := ""
	for i, a := range addrs {
		if i > 0 {
			s += ", "
		}
		s += a.Prefix.String()
	}
	return s
}
