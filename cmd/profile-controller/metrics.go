package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hermes/profile-controller/pkg/reconciler"
)

// serveMetrics serves /metrics, /healthz (the loop finished a resync within three resync
// periods) and /readyz (the controller holds the volume lease and the boot pass is done; a
// standby answers 503 "standby: owned by <holder> since <t>") on addr until ctx is done, and returns the address it listens on. A listen error is
// returned at once.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, ctl *reconciler.Controller, log logr.Logger) (string, error) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ctl.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if msg := ctl.Standby(); msg != "" {
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		if ctl.BootPending() {
			http.Error(w, "boot pass pending", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metricsAddr: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "Metrics server stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 500*time.Millisecond)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Info("Serving metrics", "addr", ln.Addr().String())
	return ln.Addr().String(), nil
}
