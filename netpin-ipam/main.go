// Command netpin-ipam is a CNI IPAM plugin that hands a pod the address
// netpin's admission webhook allocated (pod annotations netpin.io/allocated
// and netpin.io/ipam, passed by containerd in runtimeConfig) and delegates
// every other pod to a configured IPAM plugin such as host-local.
//
// Run with arguments "install --dir DIR [--wait]" it installs itself into a
// CNI bin directory instead (see install.go).
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
)

const about = "netpin-ipam: CNI IPAM plugin returning netpin's pod addresses (netpin.io/allocated), delegating other pods; " +
	"netpin-ipam install --dir DIR [--wait] installs it"

func main() {
	// A container runtime runs a plugin without arguments (CNI_COMMAND in
	// the environment); any argument selects the install command.
	if len(os.Args) > 1 {
		os.Exit(runInstall(os.Args[1:], os.Stdout, os.Stderr))
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		Status: cmdStatus,
		GC:     cmdGC,
	}, version.All, about)
}
