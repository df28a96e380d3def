package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/internal/xdstest"
)

// serveFile makes srv publish a new snapshot (a cluster more or less) whenever
// path's content changes: a stand-in for a control plane watching a YAML directory.
func serveFile(t *testing.T, srv *xdstest.Server, path string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		last, _ := os.ReadFile(path)
		version := 1
		for ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
			cur, err := os.ReadFile(path)
			if err != nil || bytes.Equal(cur, last) {
				continue
			}
			last = cur
			version++
			// 3 clusters, then 2, …: content changes, as delta proxies
			// are sent only what changed.
			if err := srv.Set(strconv.Itoa(version), 3-version%2); err != nil {
				t.Error(err)
				return
			}
		}
	}()
}

func TestRunChangeFileJSON(t *testing.T) {
	for _, mode := range []string{"sotw", "delta"} {
		t.Run(mode, func(t *testing.T) { testRunChangeFileJSON(t, mode) })
	}
}

func testRunChangeFileJSON(t *testing.T, mode string) {
	dir := t.TempDir()
	a, b, target := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "vs.yaml")
	for p, s := range map[string]string{a: "weight: 90\n", b: "weight: 80\n", target: "weight: 80\n"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := xdstest.Start(t)
	srv.SetSnapshot(t, "1", 2)
	serveFile(t, srv, target)

	var stdout, stderr bytes.Buffer
	cmd := newCommand(&stdout, &stderr)
	cmd.SetArgs([]string{
		"--xds-addr", srv.Addr, "-n", "5", "--conns", "2",
		"--change-file", target, "--change-file-a", a, "--change-file-b", b,
		"--change-count", "2", "--change-interval", "50ms", "--timeout", "3s",
		"--initial-timeout", "5s", "--duration", "20s",
		"--pid", strconv.Itoa(os.Getpid()), "--json", "--log-level", "warn", "--mode", mode, "--settle", "50ms",
	})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("run: %v\nstderr: %s\nstdout: %s", err, stderr.String(), stdout.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	for _, k := range []string{"n", "initial_convergence_ms", "changes", "p50_ms", "p99_ms", "cpu_seconds",
		"rss_bytes_peak", "rss_bytes_final", "responses_received", "bytes_received", "mode", "cpu_seconds_per_change",
		"idle_cpu_seconds_per_s", "client_rss_bytes_peak"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, stdout.String())
		}
	}
	if rep["n"] != 5.0 || rep["all_converged"] != true || rep["initial_convergence_ms"] == nil || rep["mode"] != mode {
		t.Errorf("report: %s", stdout.String())
	}
	changes, _ := rep["changes"].([]any)
	if len(changes) != 2 {
		t.Fatalf("changes: %v", rep["changes"])
	}
	for _, c := range changes {
		c := c.(map[string]any)
		if c["converged"] != 5.0 || c["failed"] != 0.0 || c["all_acked_ms"] == nil || c["cpu_seconds"] == nil || c["cpu_window_ms"] == nil {
			t.Errorf("change %v", c)
		}
	}
	if got, _ := os.ReadFile(target); string(got) != "weight: 80\n" {
		t.Errorf("after 2 changes the file holds %q, want b's content", got)
	}
}

func TestRunNoChangesTableAndNotConverged(t *testing.T) {
	srv := xdstest.Start(t) // never answers: nobody converges
	var stdout, stderr bytes.Buffer
	cmd := newCommand(&stdout, &stderr)
	cmd.SetArgs([]string{"--xds-addr", srv.Addr, "-n", "2", "--initial-timeout", "200ms", "--log-level", "error"})
	err := cmd.ExecuteContext(context.Background())
	if !errors.Is(err, errNotConverged) {
		t.Fatalf("err %v, want errNotConverged", err)
	}
	out := stdout.String()
	if !strings.Contains(out, "initial convergence: - ms, 0/2 proxies") || !strings.Contains(out, "no full config: sidecar~10.1.0.1~load-0") {
		t.Errorf("table:\n%s", out)
	}
	if strings.Contains(out, "control plane:") {
		t.Errorf("process stats without --pid:\n%s", out)
	}
}

func TestFlagValidation(t *testing.T) {
	for _, args := range [][]string{
		{"--change-file", "x"},
		{"--change-file", "x", "--change-cmd", "true"},
		{"--change-file-a", "a"},
		{"-n", "0"},
		{"--timeout", "0s"},
		{"--log-level", "loud"},
		{"--mode", "incremental"},
		{"--mode", "incremental", "--delta"},
	} {
		var stdout, stderr bytes.Buffer
		cmd := newCommand(&stdout, &stderr)
		cmd.SetArgs(append(args, "--xds-addr", "127.0.0.1:1"))
		if err := cmd.ExecuteContext(context.Background()); err == nil || errors.Is(err, errNotConverged) {
			t.Errorf("%v: err %v, want a flag error", args, err)
		}
	}
}
