package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

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

// serve starts the servers. host, when valid, is the address to listen on
// for an address flag that names only a port (the speaker: its node's
// address, not every address of the host). Token reviews get a client of
// their own, built from cfg.
func (m *metricsFlags) serve(ctx context.Context, reg *metrics.Registry, cfg *rest.Config, host netip.Addr, log *slog.Logger) error {
	o := metrics.ServeOptions{MetricsAddr: onHost(m.addr, host), HealthAddr: onHost(m.health, host)}
	if m.secure {
		c, err := k8s.ReviewClient(cfg)
		if err != nil {
			return err
		}
		o.Auth = k8s.NewTokenAuthorizer(c)
	}
	return reg.ServeWith(ctx, o, log)
}

// onHost puts host in front of addr when addr is only ":port".
func onHost(addr string, host netip.Addr) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil || h != "" || !host.IsValid() {
		return addr
	}
	return net.JoinHostPort(host.String(), port)
}
