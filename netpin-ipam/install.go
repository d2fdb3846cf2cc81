package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

const installUsage = `usage: netpin-ipam install --dir <cni bin dir> [--wait]

Copies this executable to <cni bin dir>/netpin-ipam atomically. With --wait,
then blocks until SIGTERM or SIGINT and exits 0 (for a DaemonSet container).
Run without arguments, netpin-ipam is the CNI plugin (CNI_COMMAND in env).
`

// runInstall runs the install command and returns the exit code.
func runInstall(args []string, stdout, stderr io.Writer) int {
	if args[0] != "install" {
		fmt.Fprintf(stderr, "netpin-ipam: unknown command %q\n%s", args[0], installUsage)
		return 2
	}
	flags := flag.NewFlagSet("install", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	dir := flags.String("dir", "", "CNI bin directory")
	wait := flags.Bool("wait", false, "block until SIGTERM/SIGINT")
	if err := flags.Parse(args[1:]); err != nil || *dir == "" || flags.NArg() > 0 {
		reason := "--dir is required"
		if err != nil {
			reason = err.Error()
		} else if flags.NArg() > 0 {
			reason = fmt.Sprintf("unexpected argument %q", flags.Arg(0))
		}
		fmt.Fprintf(stderr, "netpin-ipam install: %s\n%s", reason, installUsage)
		return 2
	}
	// Registered before copying so a SIGTERM that arrives during the copy
	// is not lost (it would otherwise kill the process with status 143).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "netpin-ipam install: finding own executable: %v\n", err)
		return 1
	}
	target := filepath.Join(*dir, "netpin-ipam")
	n, err := installFile(self, target)
	if err != nil {
		fmt.Fprintf(stderr, "netpin-ipam install: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "netpin-ipam: installed %s (%d bytes) from %s\n", target, n, self)
	if !*wait {
		return 0
	}
	fmt.Fprintln(stdout, "netpin-ipam: waiting for SIGTERM or SIGINT")
	<-ctx.Done()
	fmt.Fprintln(stdout, "netpin-ipam: signal received, exiting")
	return 0
}

// installFile copies src to target so that a runtime executing target at
// any moment sees either the old or the new file, never a partial one: write
// a temp file in the same directory, fsync, chmod, rename over target, then
// fsync the directory so the rename survives a crash.
func installFile(src, target string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, ".netpin-ipam-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	n, err := io.Copy(tmp, in)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), target)
	}
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", target, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return n, nil
}
