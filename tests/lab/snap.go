package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
)

// Snap stands in for what MicroK8s gives an addon's hooks: $SNAP with the
// kubectl and containerd wrappers, $SNAP_DATA with the admin kubeconfig,
// the cluster agents' callback token and the args files, $SNAP_COMMON.
type Snap struct {
	Dir, Data, Common string
	Token             string // the callback token (credentials/callback-token.txt)
	CA                *CA    // the cluster CA (certs/ca.crt), which signs the agents' certificates
}

// RecordingCtr is a containerd-client wrapper that accepts only "image
// import FILE" and keeps the file as imported.tar beside itself.
const RecordingCtr = `#!/bin/sh
# Stand-in for MicroK8s's containerd client: keeps the imported image.
[ "$1 $2" = "image import" ] || { echo "unexpected ctr call: $*" >&2; exit 1; }
cp "$3" "$(dirname "$0")/imported.tar" && echo "unpacking $(basename "$3")...done"
`

// ExecCtr is a containerd-client wrapper that runs ctr (e.g. a private
// containerd's client command), as microk8s-ctr.wrapper runs MicroK8s's.
func ExecCtr(ctr string) string { return "#!/bin/sh\nexec " + ctr + " \"$@\"\n" }

// NewSnap writes a stand-in snap under dir for the cluster of kubeconfig,
// with ctrWrapper as $SNAP/microk8s-ctr.wrapper.
func NewSnap(dir, kubeconfig, ctrWrapper string) (*Snap, error) {
	s := &Snap{Dir: filepath.Join(dir, "snap"), Data: filepath.Join(dir, "snap-data"), Common: filepath.Join(dir, "snap-common"),
		Token: "lab-callback-token-" + filepath.Base(dir)}
	kc, err := os.ReadFile(kubeconfig)
	if err != nil {
		return nil, err
	}
	if s.CA, err = NewCA(); err != nil {
		return nil, err
	}
	files := map[string]string{
		filepath.Join(s.Dir, "microk8s-ctr.wrapper"):               ctrWrapper,
		filepath.Join(s.Dir, "microk8s-kubectl.wrapper"):           "#!/bin/sh\necho 'kubectl is not used by the installer' >&2; exit 1\n",
		filepath.Join(s.Data, "credentials", "client.config"):      string(kc),
		filepath.Join(s.Data, "credentials", "callback-token.txt"): s.Token + "\n",
		filepath.Join(s.Data, "certs", "ca.crt"):                   string(s.CA.PEM),
		filepath.Join(s.Data, "args", "kube-apiserver"):            "--service-cluster-ip-range=10.152.183.0/24\n--secure-port=16443\n",
		filepath.Join(s.Data, "args", "kube-proxy"):                "--cluster-cidr=10.1.0.0/16\n",
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			return nil, err
		}
	}
	return s, os.MkdirAll(s.Common, 0o755)
}

// Hook returns the command MicroK8s would run for "microk8s enable|disable
// metallb ARGS": the repository's hook script (under root) with the snap's
// environment, inside node-a's namespace so that it only sees lab
// interfaces. env is added to the environment.
func (s *Snap) Hook(ctx context.Context, root, name string, env []string, args ...string) *exec.Cmd {
	cmd := Exec(ctx, "node-a", append([]string{filepath.Join(root, name)}, args...)...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"SNAP=" + s.Dir, "SNAP_DATA=" + s.Data, "SNAP_COMMON=" + s.Common,
	}, env...)
	return cmd
}
