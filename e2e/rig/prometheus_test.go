package rig

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestPrometheusMissingBinary checks the failure message when Prometheus cannot be found.
func TestPrometheusMissingBinary(t *testing.T) {
	t.Setenv("PROMETHEUS_BIN", "/nonexistent/prometheus")
	_, err := PrometheusPath()
	if err == nil || !strings.Contains(err.Error(), "make prometheus") {
		t.Fatalf("PrometheusPath() error = %v, want one that says how to install prometheus", err)
	}
}

// TestPrometheusRig: Prometheus starts on loopback, scrapes itself, and the
// query helpers read its API.
func TestPrometheusRig(t *testing.T) {
	p := StartPrometheus(t, PrometheusOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	self := StartPrometheus(t, PrometheusOptions{Jobs: []ScrapeJob{{Name: "prom", Targets: []string{p.Addr}}}})
	if err := self.WaitTargetsUp(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		v, err := self.QueryValue(ctx, `up{job="prom"}`)
		if err == nil && v != 1 {
			t.Fatalf("up = %v", v)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := self.QueryValue(ctx, `1 + 1`); err != nil || v != 2 {
		t.Errorf("scalar query: %v %v", v, err)
	}
}
