package integration

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestInstall(t *testing.T) {
	self := filepath.Join(binDir, "netpin-ipam")
	dir := t.TempDir()
	// An older file in place is replaced.
	if err := os.WriteFile(filepath.Join(dir, "netpin-ipam"), []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(self, "install", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	want, _ := os.ReadFile(self)
	got, err := os.ReadFile(filepath.Join(dir, "netpin-ipam"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("installed file differs from the executable (err %v)", err)
	}
	info, _ := os.Stat(filepath.Join(dir, "netpin-ipam"))
	if info.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v, want 0755", info.Mode().Perm())
	}
	if msg := string(out); !strings.Contains(msg, "netpin-ipam: installed "+filepath.Join(dir, "netpin-ipam")) {
		t.Fatalf("output %q does not say what was installed", msg)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want only netpin-ipam (no temp file left)", len(entries))
	}
}

func TestInstallWait(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "netpin-ipam"), "install", "--dir", dir, "--wait")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && !strings.Contains(lines.Text(), "waiting for SIGTERM") {
	}
	if _, err := os.Stat(filepath.Join(dir, "netpin-ipam")); err != nil {
		t.Fatalf("not installed before waiting: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		for lines.Scan() {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		t.Fatalf("exited before SIGTERM: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("still running 10s after SIGTERM")
	}
}

func TestInstallUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"frobnicate"}, `netpin-ipam: unknown command "frobnicate"`},
		{[]string{"install"}, "netpin-ipam install: --dir is required"},
		{[]string{"install", "--dir"}, "netpin-ipam install: flag needs an argument: -dir"},
		{[]string{"install", "--dir", "/tmp", "extra"}, `netpin-ipam install: unexpected argument "extra"`},
		{[]string{"install", "--bogus"}, "netpin-ipam install: flag provided but not defined: -bogus"},
	} {
		cmd := exec.Command(filepath.Join(binDir, "netpin-ipam"), tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 2 {
			t.Fatalf("%v: exit %d (%v), want 2", tc.args, code, err)
		}
		if !strings.HasPrefix(stderr.String(), tc.msg+"\nusage: netpin-ipam install --dir <cni bin dir> [--wait]") {
			t.Fatalf("%v: stderr %q, want %q and the usage", tc.args, stderr.String(), tc.msg)
		}
	}
}
