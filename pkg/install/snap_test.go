package install

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The environment wins; without it, the snap's standard paths that exist.
func TestFindSnap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    map[string]string
		exists []string
		want   Snap
	}{
		{"under microk8s enable", map[string]string{"SNAP": "/snap/microk8s/123", "SNAP_DATA": "/var/snap/microk8s/123", "SNAP_COMMON": "/c"},
			nil, Snap{"/snap/microk8s/123", "/var/snap/microk8s/123", "/c"}},
		{"the hook run directly", nil, []string{DefaultSnapRoot, DefaultSnapData, DefaultSnapCommon},
			Snap{DefaultSnapRoot, DefaultSnapData, DefaultSnapCommon}},
		{"no MicroK8s", nil, nil, Snap{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := FindSnap(func(k string) string { return tc.env[k] }, func(p string) bool {
				for _, e := range tc.exists {
					if e == p {
						return true
					}
				}
				return false
			})
			if diff := cmp.Diff(tc.want, s); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	s := Snap{Root: DefaultSnapRoot, Data: DefaultSnapData, Common: DefaultSnapCommon}
	got := []string{s.Ctr()[0], s.CallbackToken(), s.ClusterCA(), s.SavedConfig()}
	want := []string{"/snap/microk8s/current/microk8s-ctr.wrapper", "/var/snap/microk8s/current/credentials/callback-token.txt",
		"/var/snap/microk8s/current/certs/ca.crt", "/var/snap/microk8s/common/metallb/config.yaml"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	if (Snap{}).Ctr() != nil || (Snap{}).CallbackToken() != "" {
		t.Error("paths outside MicroK8s")
	}
}
