// mkimage writes an OCI image archive from files on this machine, without a Docker engine and
// without contacting any registry: one layer holding a root file system (a directory, or single
// files), and the image config given by flags. `ctr images import`, `podman load` and
// `skopeo copy oci-archive:` read the archive.
//
//	mkimage -dir rootfs -entrypoint /nodejs/bin/node -entrypoint dist/src/cli/main.js -cmd serve \
//	        -workdir /app -user 65532:65532 -tag netpin.test/netpin:0.1.0 -out netpin.tar
//	mkimage -file ./pause:/pause -entrypoint /pause -tag netpin.test/pause:1 -out pause.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A fixed timestamp keeps archives reproducible: the same inputs give the same digests.
var epoch = time.Unix(0, 0).UTC()

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	dir := flag.String("dir", "", "root file system to put in the layer, as it is, owned by 0:0")
	var files, entrypoint, cmd, env, ports multiFlag
	flag.Var(&files, "file", "src:/dest, a single file to put in the layer (repeatable)")
	flag.Var(&entrypoint, "entrypoint", "one entrypoint argument (repeatable)")
	flag.Var(&cmd, "cmd", "one default argument (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE for the image config (repeatable)")
	flag.Var(&ports, "expose", "port/proto for the image config (repeatable)")
	workdir := flag.String("workdir", "/", "working directory of the entrypoint")
	user := flag.String("user", "65534:65534", "uid:gid the entrypoint runs as")
	tag := flag.String("tag", "", "image reference, e.g. netpin.test/app:1 (an explicit tag, never latest)")
	out := flag.String("out", "", "archive to write")
	flag.Parse()
	if (*dir == "") == (len(files) == 0) || len(entrypoint) == 0 || *tag == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	// kubelet pulls :latest whatever the pull policy says it may skip; local images must never be pulled.
	if strings.HasSuffix(*tag, ":latest") || !strings.Contains(*tag, ":") {
		log.Fatalf("mkimage: %q: give an explicit tag other than latest", *tag)
	}
	ref, err := name.NewTag(*tag, name.StrictValidation)
	if err != nil {
		log.Fatalf("mkimage: %v", err)
	}

	var layerTar []byte
	if *dir != "" {
		layerTar, err = dirTar(*dir)
	} else {
		layerTar, err = filesTar(files)
	}
	if err != nil {
		log.Fatalf("mkimage: layer: %v", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		log.Fatalf("mkimage: layer: %v", err)
	}
	cfg := &v1.ConfigFile{
		Created:      v1.Time{Time: epoch},
		OS:           "linux",
		Architecture: runtime.GOARCH,
		Config: v1.Config{
			Entrypoint: entrypoint,
			Cmd:        cmd,
			User:       *user,
			Env:        append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, env...),
			WorkingDir: *workdir,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	if len(ports) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range ports {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err := mutate.ConfigFile(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), cfg)
	if err == nil {
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "netpin mkimage"}})
	}
	if err != nil {
		log.Fatalf("mkimage: image: %v", err)
	}
	if err := writeOCIArchive(*out, ref, img); err != nil {
		log.Fatalf("mkimage: %v", err)
	}
	digest, err := img.Digest()
	if err != nil {
		log.Fatalf("mkimage: %v", err)
	}
	fmt.Printf("%s %s %s\n", ref.String(), digest, filepath.Base(*out))
}

// writeOCIArchive writes an OCI image layout and tars it. The index names the image twice:
// io.containerd.image.name is what `ctr images import` tags it with, and
// org.opencontainers.image.ref.name is the OCI spelling of the tag.
func writeOCIArchive(out string, ref name.Tag, img v1.Image) error {
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".mkimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	annotations := map[string]string{"io.containerd.image.name": ref.String(), "org.opencontainers.image.ref.name": ref.TagStr()}
	if err := p.AppendImage(img, layout.WithAnnotations(annotations)); err != nil {
		return err
	}
	archive, err := dirTar(tmp)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out+".tmp", archive, 0o644); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}

// dirTar packs a directory in name order with fixed times and root ownership, so that the
// same tree gives the same bytes.
func dirTar(root string) ([]byte, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		info, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		link := ""
		if info.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return nil, err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, p)
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// filesTar is a layer of single executables; runc creates /proc, /dev, /sys and the mount
// targets kubelet needs (/etc/hosts, ...) itself.
func filesTar(specs []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, spec := range specs {
		src, dest, ok := strings.Cut(spec, ":")
		if !ok || !strings.HasPrefix(dest, "/") {
			return nil, fmt.Errorf("-file %q: want src:/dest", spec)
		}
		content, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Name: strings.TrimPrefix(dest, "/"), Mode: 0o755, Size: int64(len(content)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
