package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mizzenmesh/mizzen/xds"
)

// The monitoring port serves /metrics and /ready to anyone (Prometheus and
// kubelet are remote) and /debug/* and the web view /ui/ to loopback clients only.
func TestMonitoringDebugIsLoopbackOnly(t *testing.T) {
	reg := prometheus.NewRegistry()
	mux := monitoringMux(reg, xds.New(xds.Options{Metrics: xds.NewMetrics(reg)}))
	get := func(remote, path string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, path := range []string{"/debug/syncz", "/debug/configz", "/debug/push_status", "/debug/changes", "/debug/pprof/", "/debug/pprof/cmdline",
		"/ui/", "/ui/mesh", "/ui/app.js", "/ui/api/mesh", "/ui/api/explain"} {
		if code := get("10.1.2.3:5000", path); code != http.StatusForbidden {
			t.Errorf("GET %s from 10.1.2.3: %d, want 403", path, code)
		}
		if code := get("127.0.0.1:5000", path); code == http.StatusForbidden {
			t.Errorf("GET %s from loopback: 403", path)
		}
	}
	if code := get("10.1.2.3:5000", "/metrics"); code != http.StatusOK {
		t.Errorf("GET /metrics from 10.1.2.3: %d, want 200", code)
	}
	if code := get("10.1.2.3:5000", "/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /ready from 10.1.2.3 before the first snapshot: %d, want 503 (not 403)", code)
	}
}
