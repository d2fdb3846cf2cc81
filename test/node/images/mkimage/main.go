// mkimage writes a single-binary OCI image as a docker-style archive (the format
// `ctr images import` reads), from a layer made here: no registry is ever contacted.
//
//	mkimage -bin ./pause -path /pause -tag netpin.test/pause:1 -user 65535:65535 -out pause.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// A fixed timestamp keeps the archives reproducible, so re-running gives the same digests.
var epoch = time.Unix(0, 0).UTC()

func main() {
	bin := flag.String("bin", "", "static binary to put in the image")
	dest := flag.String("path", "", "absolute path of the binary inside the image; also the entrypoint")
	tag := flag.String("tag", "", "image reference, e.g. netpin.test/app:1 (never a real registry, never :latest)")
	user := flag.String("user", "65534:65534", "uid:gid the entrypoint runs as")
	out := flag.String("out", "", "archive to write")
	var env multiFlag
	flag.Var(&env, "env", "KEY=VALUE for the image config (repeatable)")
	var ports multiFlag
	flag.Var(&ports, "expose", "port/proto for the image config (repeatable)")
	flag.Parse()
	if *bin == "" || !strings.HasPrefix(*dest, "/") || *tag == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if strings.HasSuffix(*tag, ":latest") || !strings.Contains(*tag, ":") {
		log.Fatalf("mkimage: %q: give an explicit tag other than latest (kubelet would try to pull it)", *tag)
	}

	ref, err := name.NewTag(*tag, name.StrictValidation)
	if err != nil {
		log.Fatalf("mkimage: %v", err)
	}
	content, err := os.ReadFile(*bin)
	if err != nil {
		log.Fatalf("mkimage: %v", err)
	}
	layerTar, err := singleFileTar(strings.TrimPrefix(*dest, "/"), content)
	if err != nil {
		log.Fatalf("mkimage: %v", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		log.Fatalf("mkimage: layer: %v", err)
	}

	cfg := &v1.ConfigFile{
		Created:      v1.Time{Time: epoch},
		OS:           "linux",
		Architecture: runtime.GOARCH,
		Config: v1.Config{
			Entrypoint: []string{*dest},
			User:       *user,
			Env:        append([]string{"PATH=/"}, env...),
			WorkingDir: "/",
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	if len(ports) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range ports {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		log.Fatalf("mkimage: config: %v", err)
	}
	// Append fills rootfs.diff_ids and history from the layer.
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "netpin mkimage " + *dest},
	})
	if err != nil {
		log.Fatalf("mkimage: append: %v", err)
	}

	tmp := *out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		log.Fatalf("mkimage: write: %v", err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		log.Fatalf("mkimage: %v", err)
	}
	digest, err := img.Digest()
	if err != nil {
		log.Fatalf("mkimage: %v", err)
	}
	fmt.Printf("%s %s %s\n", ref.String(), digest, filepath.Base(*out))
}

// singleFileTar is a layer holding one executable; runc creates /proc, /dev, /sys and
// the kubelet's bind-mount targets (/etc/hosts, …) itself.
func singleFileTar(p string, content []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{
		Name: p, Mode: 0o755, Size: int64(len(content)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX,
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
