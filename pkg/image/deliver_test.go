package image

import (
	"context"
	"os"
	"strings"
	"testing"
)

// Deliver skips the import when every node's kubelet already reports the
// image, imports when one lacks it, and only names it in a dry run.
func TestDeliverSkipsNodesThatHaveTheImage(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var logged []string
	d := Delivery{Exe: exe, Version: "v1"}
	log := func(f string, a ...any) { logged = append(logged, f) }
	ref, err := Tag(exe, "v1")
	if err != nil {
		t.Fatal(err)
	}
	has := []Node{{Name: "a", Images: []string{"other:1", ref}}, {Name: "b", Images: []string{ref}}}
	got, err := d.Deliver(context.Background(), has, false, log)
	if err != nil || got != ref {
		t.Fatalf("Deliver = %q, %v; want %q", got, err, ref)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "already on every node") {
		t.Errorf("logged %q", logged)
	}
	// One node lacks it: the import is attempted (and fails here, with no
	// containerd client, saying so).
	lacks := []Node{{Name: "a", Images: []string{ref}}}
	lacks[0].Images = nil
	if _, err := d.Deliver(context.Background(), lacks, false, log); err == nil || !strings.Contains(err.Error(), "no containerd client") {
		t.Errorf("err = %v", err)
	}
	if got, err := d.Deliver(context.Background(), lacks, true, log); err != nil || got != ref {
		t.Errorf("dry run: %q, %v", got, err)
	}
	if got, _ := (Delivery{Image: "registry.example/metallb:1"}).Deliver(context.Background(), lacks, false, nil); got != "registry.example/metallb:1" {
		t.Errorf("--image: %q", got)
	}
}
