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

// RunAsLeader runs fn while this process holds the Lease namespace/name, so
// that of several replicas exactly one is active. When leadership is lost fn's
// context is cancelled and RunAsLeader returns an error (the process should
// exit and restart as a follower). Takeover after a crash takes at most the
// lease duration plus one retry period (about 9 s); after a clean stop
// (SIGTERM: the lease is released) one retry period.
//
// following, when set, is called once a leader is known (this process or
// another): a follower that reaches the API server is ready to take over,
// and must say so, or a rolling update of a single-replica Deployment waits
// for a new pod that can only lead once the old one has gone.
func RunAsLeader(ctx context.Context, client kubernetes.Interface, namespace, name string, log *slog.Logger, following func(), fn func(context.Context)) error {
	id, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("leader election identity: %w", err)
	}
	id = fmt.Sprintf("%s_%d", id, os.Getpid())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	lost := make(chan struct{})
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		ReleaseOnCancel: true,
		LeaseDuration:   8 * time.Second,
		RenewDeadline:   5 * time.Second,
		RetryPeriod:     1 * time.Second,
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
