// Package metrics holds the Prometheus registry of one process and serves it
// with /healthz and /readyz. Nothing registers into a global registry: each
// component receives the Registry and registers its own collectors.
package metrics

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name, as MetalLB does.
const Namespace = "metallb"

// Registry is a process's metrics plus its readiness flag.
type Registry struct {
	*prometheus.Registry
	ready atomic.Bool
	pprof bool
}

// New returns a registry with the Go and process collectors.
func New() *Registry {
	r := &Registry{Registry: prometheus.NewRegistry()}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// SetReady flips /readyz.
func (r *Registry) SetReady(ok bool) { r.ready.Store(ok) }

// EnableProfiling adds Go's /debug/pprof handlers to Handler (off by
// default: they expose internals).
func (r *Registry) EnableProfiling() { r.pprof = true }

// Handler serves /metrics, /healthz and /readyz (and /debug/pprof when
// enabled).
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	if r.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !r.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Serve listens on addr (empty: do nothing) until ctx ends, in plain HTTP
// with /metrics, /healthz and /readyz open to anyone who reaches the port.
func (r *Registry) Serve(ctx context.Context, addr string, log *slog.Logger) error {
	return r.ServeWith(ctx, ServeOptions{MetricsAddr: addr}, log)
}

// Authorizer decides whether the bearer token of a request may read path:
// it returns http.StatusOK, StatusUnauthorized (no valid token) or
// StatusForbidden (a valid token without the right), and why.
type Authorizer interface {
	Authorize(ctx context.Context, token, path string) (int, string)
}

// ServeOptions say where and how to serve.
type ServeOptions struct {
	// MetricsAddr serves /metrics (empty: off). With Auth, over HTTPS (a
	// self-signed certificate made at start) and only to callers Auth lets
	// read it; without, in plain HTTP with the health endpoints.
	MetricsAddr string
	Auth        Authorizer
	// HealthAddr serves /healthz and /readyz in plain HTTP, to anyone (the
	// kubelet's probes): they tell ok or not, nothing else.
	HealthAddr string
}

// ServeWith serves until ctx ends.
func (r *Registry) ServeWith(ctx context.Context, o ServeOptions, log *slog.Logger) error {
	if o.MetricsAddr != "" {
		h := r.Handler()
		var tlsConf *tls.Config
		if o.Auth != nil {
			cert, err := SelfSigned()
			if err != nil {
				return err
			}
			tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			h = r.secured(o.Auth, log)
		}
		if err := serve(ctx, o.MetricsAddr, h, tlsConf, log, "metrics"); err != nil {
			return err
		}
	}
	if o.HealthAddr != "" {
		if err := serve(ctx, o.HealthAddr, r.health(), nil, log, "health"); err != nil {
			return err
		}
	}
	return nil
}

// secured serves /metrics (and the profiles, when enabled) to callers the
// Authorizer allows, and nothing else.
func (r *Registry) secured(auth Authorizer, log *slog.Logger) http.Handler {
	inner := r.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/healthz" || req.URL.Path == "/readyz" {
			http.NotFound(w, req) // on the health address
			return
		}
		token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			http.Error(w, "Unauthorized: send a bearer token (a ServiceAccount's, allowed to get the non-resource URL /metrics)", http.StatusUnauthorized)
			return
		}
		code, why := auth.Authorize(req.Context(), token, req.URL.Path)
		if code != http.StatusOK {
			log.Debug("metrics request refused", "from", req.RemoteAddr, "path", req.URL.Path, "status", code, "reason", why)
			http.Error(w, http.StatusText(code)+": "+why, code)
			return
		}
		inner.ServeHTTP(w, req)
	})
}

func (r *Registry) health() http.Handler {
	mux := http.NewServeMux()
	inner := r.Handler()
	mux.Handle("/healthz", inner)
	mux.Handle("/readyz", inner)
	return mux
}

func serve(ctx context.Context, addr string, h http.Handler, tlsConf *tls.Config, log *slog.Logger, what string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for %s on %s: %w", what, addr, err)
	}
	l := newLimitListener(ln, MaxConns, MaxConnsPerSource)
	srv := &http.Server{
		Handler: h, TLSConfig: tlsConf,
		ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug), // a flood of bad handshakes is not news
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	scheme := "http"
	if tlsConf != nil {
		scheme = "https, authenticated"
	}
	log.Info("serving "+what, "address", l.Addr().String(), "scheme", scheme)
	go func() {
		var err error
		if tlsConf != nil {
			err = srv.ServeTLS(l, "", "")
		} else {
			err = srv.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" server stopped", "error", err)
		}
	}()
	return nil
}

// SelfSigned makes a certificate for the metrics endpoint: scrapers check
// the caller's rights by its token, and the endpoint's identity by the pod
// they chose to scrape (Prometheus scrapes it with insecureSkipVerify, as
// it does kube-rbac-proxy's).
func SelfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "metallb metrics"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make the metrics certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
