package main

import (
	"context"
	"log/slog"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// metricsFlags are the controller's and the speaker's serving flags.
type metricsFlags struct {
	addr, health string
	secure       bool
}

func (m *metricsFlags) add(f *pflag.FlagSet, addr, health string) {
	f.StringVar(&m.addr, "metrics-addr", addr, "address for /metrics (empty: off)")
	f.StringVar(&m.health, "health-addr", health, "address for /healthz and /readyz, plain HTTP (empty: off)")
	f.BoolVar(&m.secure, "metrics-secure", true, "serve /metrics over HTTPS to callers whose bearer token may get it "+
		"(TokenReview and SubjectAccessReview); false: plain HTTP to anyone, with /healthz and /readyz")
}

func (m *metricsFlags) serve(ctx context.Context, reg *metrics.Registry, c kubernetes.Interface, log *slog.Logger) error {
	o := metrics.ServeOptions{MetricsAddr: m.addr, HealthAddr: m.health}
	if m.secure {
		o.Auth = k8s.NewTokenAuthorizer(c)
	}
	return reg.ServeWith(ctx, o, log)
}
