package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// The leader renews the Lease every LeaderRetry: its one steady write,
// and it does not grow with the cluster (0.25 writes/s, where the speakers
// of 100 nodes write about 0.6/s in all). A follower (a rolling update's new
// pod) reads the Lease as often, and takes over within LeaderRetry of a
// clean stop (SIGTERM releases the Lease); after a crash it waits until the
// Lease expires (at most LeaderLease + LeaderRetry), unless it is the same
// pod (PodNameEnv) restarted: the holder is then itself, known dead, and it
// leads at once.
const (
	LeaderLease = 20 * time.Second
	LeaderRenew = 15 * time.Second // RenewDeadline: leading stops when a renewal fails this long
	LeaderRetry = 4 * time.Second
	PodNameEnv  = "METALLB_POD_NAME"
	identitySep = "_"
)

// RunAsLeader runs fn while this process holds the Lease namespace/name, so
// that of several replicas exactly one is active. When leadership is lost fn's
// context is cancelled and RunAsLeader returns an error (the process should
// exit and restart as a follower).
//
// following, when set, is called once a leader is known (this process or
// another): a follower that reaches the API server is ready to take over,
// and must say so, or a rolling update of a single-replica Deployment waits
// for a new pod that can only lead once the old one has gone.
func RunAsLeader(ctx context.Context, client kubernetes.Interface, namespace, name string, log *slog.Logger, following func(), fn func(context.Context)) error {
	id, err := leaderIdentity()
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	lost := make(chan struct{})
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		ReleaseOnCancel: true,
		LeaseDuration:   LeaderLease,
		RenewDeadline:   LeaderRenew,
		RetryPeriod:     LeaderRetry,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("became leader", "lease", namespace+"/"+name, "identity", id)
				fn(ctx)
			},
			OnStoppedLeading: func() { close(lost) },
			OnNewLeader: func(identity string) {
				if following != nil {
					following()
				}
				if identity != id {
					log.Info("following the leader", "leader", identity)
				}
			},
		},
	})
	// Releasing the lease on shutdown also stops leading: only a loss while
	// still running is an error.
	if ctx.Err() != nil {
		return nil
	}
	select {
	case <-lost:
		return fmt.Errorf("lost leadership of lease %s/%s", namespace, name)
	default:
		return nil
	}
}

// leaderIdentity is the pod's name when PodNameEnv gives it (a pod's
// containers never run twice at once: a restarted controller is the same
// holder, and takes its Lease back at once), else the host name and the
// process ID (processes on one host: each its own holder).
func leaderIdentity() (string, error) {
	if pod := os.Getenv(PodNameEnv); pod != "" {
		return pod, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader election identity: %w", err)
	}
	return fmt.Sprintf("%s%s%d", host, identitySep, os.Getpid()), nil
}
