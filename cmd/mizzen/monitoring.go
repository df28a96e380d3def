package main

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mizzenmesh/mizzen/pkg/ui"
	"github.com/mizzenmesh/mizzen/xds"
)

// monitoringMux serves istiod's monitoring port: /ready, /metrics, /debug/*,
// and mizzen's web view /ui/ (pkg/ui), which shows what /debug/ knows.
// /ready and /metrics are open (kubelet probes and Prometheus come from the
// network); everything under /debug/ answers loopback clients only.
//
// /ready also waits for every check in ready (e.g. the webhooks' caches).
func monitoringMux(reg *prometheus.Registry, server *xds.Server, ready ...func() error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !server.Ready() {
			http.Error(w, "not ready: no config snapshot built yet", http.StatusServiceUnavailable)
			return
		}
		for _, check := range ready {
			if err := check(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/debug/", xds.LoopbackOnly(server.DebugHandler()))
	mux.Handle("/ui/", xds.LoopbackOnly(ui.Handler(server.DebugHandler())))
	mux.Handle("/ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	mux.Handle("/debug/pprof/", xds.LoopbackOnly(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", xds.LoopbackOnly(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", xds.LoopbackOnly(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", xds.LoopbackOnly(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", xds.LoopbackOnly(http.HandlerFunc(pprof.Trace)))
	return mux
}
