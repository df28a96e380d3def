package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/file"
	"github.com/mizzenmesh/mizzen/xds"
)

type serveOptions struct {
	configDir      string
	xdsAddr        string
	monitoringAddr string
	logLevel       string
}

func newServeCommand() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control plane",
		Long: "Run the control plane. With --config-dir it serves a watched directory of Kubernetes\n" +
			"and Istio YAML (no cluster needed).",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configDir, "config-dir", "", "directory of Kubernetes and Istio YAML to serve (watched)")
	f.StringVar(&o.xdsAddr, "xds-addr", "127.0.0.1:15010", "plaintext gRPC xDS (ADS) listen address")
	f.StringVar(&o.monitoringAddr, "monitoring-addr", "127.0.0.1:15014", "HTTP listen address for /ready, /metrics and /debug")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func serve(ctx context.Context, o serveOptions) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.configDir == "" {
		return errors.New("--config-dir is required (Kubernetes mode is not built yet)")
	}
	if st, err := os.Stat(o.configDir); err != nil || !st.IsDir() {
		return fmt.Errorf("--config-dir %s: not a readable directory", o.configDir)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := xds.NewMetrics(reg)
	server := xds.New(xds.Options{Logger: log, Metrics: metrics})

	xdsLis, err := net.Listen("tcp", o.xdsAddr)
	if err != nil {
		return fmt.Errorf("xDS listener: %w", err)
	}
	monLis, err := net.Listen("tcp", o.monitoringAddr)
	if err != nil {
		xdsLis.Close()
		return fmt.Errorf("monitoring listener: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	reporter := &errorReporter{log: log, metrics: metrics}
	src := file.New(o.configDir, file.Options{Logger: log, OnError: func(e *file.Error) {
		log.Error("config file skipped; its previous good state is kept", "file", e.File, "doc", e.Doc, "line", e.Line, "err", e.Error())
		metrics.ConfigError("File", "ParseError")
	}})
	var version atomic.Uint64
	apply := func(in model.Inputs) {
		snap := model.Build(&in, version.Add(1))
		reporter.report(snap.Errors)
		server.Update(snap)
	}
	in, errs := src.Load()
	for _, e := range errs {
		log.Error("config file skipped", "file", e.File, "doc", e.Doc, "line", e.Line, "err", e.Error())
		metrics.ConfigError("File", "ParseError")
	}
	apply(in)
	run(func() { server.Run(ctx) })
	run(func() {
		if err := src.Run(ctx, apply); err != nil {
			log.Error("watching config directory failed", "err", err)
		}
	})

	grpcServer := grpc.NewServer(
		grpc.ForceServerCodecV2(xds.Codec{}),
		grpc.MaxConcurrentStreams(100000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	server.Register(ctx, grpcServer)
	run(func() {
		if err := grpcServer.Serve(xdsLis); err != nil {
			log.Error("xDS server stopped", "err", err)
		}
	})
	httpServer := &http.Server{Handler: monitoringMux(reg, server), ReadHeaderTimeout: 10 * time.Second}
	run(func() {
		if err := httpServer.Serve(monLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("monitoring server stopped", "err", err)
		}
	})
	log.Info("mizzen serving",
		"xds", "grpc://"+xdsLis.Addr().String(),
		"metrics", "http://"+monLis.Addr().String()+"/metrics",
		"debug", "http://"+monLis.Addr().String()+"/debug/",
		"config_dir", o.configDir)

	<-ctx.Done()
	log.Info("shutting down")
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = httpServer.Shutdown(shutdownCtx)
	stopped := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		grpcServer.Stop() // xDS streams never end on their own
	}
	wg.Wait()
	return nil
}

// errorReporter logs and counts each config error once, when it first appears,
// rather than on every rebuild.
type errorReporter struct {
	log     *slog.Logger
	metrics *xds.Metrics
	mu      sync.Mutex
	seen    map[string]bool
}

func (r *errorReporter) report(errs []model.ConfigError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := map[string]bool{}
	for _, e := range errs {
		key := e.Error()
		now[key] = true
		if r.seen[key] {
			continue
		}
		r.metrics.ConfigError(e.Kind, e.Code)
		attrs := []any{"kind", e.Kind, "namespace", e.Namespace, "name", e.Name, "field", e.Field, "code", e.Code, "reason", e.Message}
		if e.Warning {
			r.log.Warn("config warning", attrs...)
		} else {
			r.log.Error("config object skipped", attrs...)
		}
	}
	r.seen = now
}
