// Package integration runs netpin-ipam for real: built binaries of
// netpin-ipam, the reference bridge plugin and host-local, driven through
// libcni as a container runtime drives them, in fresh network namespaces.
// It needs root (netns, veth, bridges) and fails, not skips, without it.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir holds the built plugins (CNI_PATH of every test).
var binDir string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "FAIL: netpin-ipam integration tests need root (network namespaces, veth, bridges); run `go test ./...` as root")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "netpin-ipam-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		// bridge and host-local are tool dependencies of the module (go.mod),
		// so this works on a fresh machine with GOFLAGS=-mod=mod.
		build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"netpin.io/netpin-ipam",
			"github.com/containernetworking/plugins/plugins/main/bridge",
			"github.com/containernetworking/plugins/plugins/ipam/host-local")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: building the plugins: %v\n", err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}
