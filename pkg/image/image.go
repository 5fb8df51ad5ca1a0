// Package image packages the running metallb executable as a one-layer OCI
// image (no Docker needed) and imports it into containerd, so that the
// cluster runs exactly the binary that installed it, even offline.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Repository is where a locally built image is named; "localhost/" keeps
// containerd and the kubelet from ever trying to pull it from a registry.
const Repository = "localhost/microk8s-metallb"

// Path of the executable inside the image; the manifests run it.
const Path = "/metallb"

// Tag names the image of the executable at exe: the version and the first
// 12 hex digits of the file's SHA-256, so a different binary always gets a
// different reference (and the workloads roll) while the same one does not.
func Tag(exe, version string) (string, error) {
	f, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", exe, err)
	}
	v := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, version)
	return fmt.Sprintf("%s:%s-%s", Repository, v, hex.EncodeToString(h.Sum(nil))[:12]), nil
}

// Static reports an error unless exe is a statically linked ELF file: the
// image has nothing but the executable, so it cannot have a loader.
func Static(exe string) error {
	f, err := elf.Open(exe)
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable: %w", exe, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked and cannot run alone in an image: build it with scripts/build.sh (CGO_ENABLED=0), or pass --image", exe)
		}
	}
	return nil
}

// Of returns the image holding exe at Path, for this machine's
// architecture.
func Of(exe string) (v1.Image, error) {
	if err := Static(exe); err != nil {
		return nil, err
	}
	body, err := os.ReadFile(exe)
	if err != nil {
		return nil, err
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(Path, "/"), Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(body); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil
	})
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config = v1.Config{Entrypoint: []string{Path}, Labels: map[string]string{"org.opencontainers.image.title": "metallb"}}
	return mutate.ConfigFile(img, cfg)
}

// tagged is the image of exe with the tag ref names.
func tagged(exe, ref string) (name.Tag, v1.Image, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return name.Tag{}, nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	img, err := Of(exe)
	return tag, img, err
}

// Build writes a docker-archive tarball of an image holding exe at Path,
// tagged ref, for this machine's architecture, to w.
func Build(exe, ref string, w io.Writer) error {
	tag, img, err := tagged(exe, ref)
	if err != nil {
		return err
	}
	if err := tarball.Write(tag, img, w); err != nil {
		return fmt.Errorf("write image %s: %w", ref, err)
	}
	return nil
}

// Import builds the image of exe into a temporary file and imports it with
// containerd's client: ctr is the command to run with "image import FILE"
// appended (under MicroK8s, $SNAP/microk8s-ctr.wrapper, which targets the
// k8s.io namespace the kubelet uses).
func Import(ctx context.Context, exe, ref string, ctr []string) error {
	f, err := buildTemp(exe, ref)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	args := append(append([]string{}, ctr[1:]...), "image", "import", f.Name())
	out, err := exec.CommandContext(ctx, ctr[0], args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import image into containerd (%s): %w: %s", strings.Join(ctr, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// buildTemp builds the image into a temporary file, closed; the caller
// removes it.
func buildTemp(exe, ref string) (*os.File, error) {
	f, err := os.CreateTemp("", "metallb-image-*.tar")
	if err != nil {
		return nil, err
	}
	err = Build(exe, ref, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}
