package image

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryRef is the reference under which the image of local (a
// Repository reference) lives in registry (host:port).
func RegistryRef(registry, local string) string {
	return strings.TrimSuffix(registry, "/") + "/" + strings.TrimPrefix(local, "localhost/")
}

// Push builds the image of exe and pushes it to ref's registry. A registry
// on localhost or a loopback or private address (MicroK8s's registry
// addon, localhost:32000) is spoken to over plain HTTP, as containerd does
// there; any other over HTTPS.
func Push(ctx context.Context, exe, ref string) error {
	tag, img, err := tagged(exe, ref)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuth(authn.Anonymous)); err != nil {
		return fmt.Errorf("push image %s: %w (is the registry up? microk8s enable registry)", ref, err)
	}
	return nil
}
