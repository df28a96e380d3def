package rig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Main is the TestMain of e2e test packages: it runs the tests and removes the
// mizzen binary built for them.
//
//	func TestMain(m *testing.M) { rig.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	CleanupBuilds()
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// CleanupBuilds removes the binaries MizzenBinary and the other helpers built
// (echo, echoclient, the sidecars' Envoy link); Main calls it.
func CleanupBuilds() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if toolsDir != "" {
		_ = os.RemoveAll(toolsDir)
	}
}

// MizzenBinary returns the mizzen binary under test: $MIZZEN_BIN if set, else one
// built from this checkout with `go build` once per test binary run.
func MizzenBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MIZZEN_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("rig: MIZZEN_BIN=%s: %v", p, err)
		}
		return p
	}
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "mizzen-e2e-build-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(buildDir, "mizzen")
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go tool is not on PATH: %v", err)
			return
		}
		cmd := exec.Command(goBin, "build", "-o", buildBin, "github.com/mizzenmesh/mizzen/cmd/mizzen")
		cmd.Dir = root
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/mizzen: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "rig: built %s in %s\n", buildBin, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatalf("rig: building mizzen: %v", buildErr)
	}
	return buildBin
}

// Mizzen is a running `mizzen serve`.
type Mizzen struct {
	ConfigDir      string // the watched --config-dir
	XDSAddr        string // --xds-addr (plaintext gRPC ADS)
	SecureXDSAddr  string // --secure-xds-addr (TLS: ADS with SDS, CSR API; token-authenticated)
	WebhookAddr    string // --webhook-addr (HTTPS admission webhooks /inject and /validate; Kubernetes mode)
	MonitoringAddr string // --monitoring-addr
	MonitoringURL  string // http://MonitoringAddr
	LogPath        string // its stdout and stderr

	proc   *process
	client *http.Client
}

// StartMizzen runs `mizzen serve` with args and waits (≤ 20 s) until /ready is 200.
// Unless args set them, it adds --config-dir (a fresh temp dir), --xds-addr and
// --monitoring-addr (free ports on 127.0.0.1). Mizzen gets SIGTERM, then SIGKILL,
// when the test ends; if the test failed its log tail is printed.
func StartMizzen(t testing.TB, args ...string) *Mizzen {
	t.Helper()
	bin := MizzenBinary(t)
	m := &Mizzen{client: &http.Client{Timeout: 10 * time.Second}}
	m.ConfigDir = flagValue(args, "config-dir")
	m.XDSAddr = flagValue(args, "xds-addr")
	m.MonitoringAddr = flagValue(args, "monitoring-addr")
	m.SecureXDSAddr = flagValue(args, "secure-xds-addr")
	full := []string{"serve"}
	if m.ConfigDir == "" && flagValue(args, "kubeconfig") == "" {
		m.ConfigDir = t.TempDir()
		full = append(full, "--config-dir", m.ConfigDir)
	}
	if m.XDSAddr == "" {
		m.XDSAddr = FreeAddr(t, "127.0.0.1")
		full = append(full, "--xds-addr", m.XDSAddr)
	}
	if m.MonitoringAddr == "" {
		m.MonitoringAddr = FreeAddr(t, "127.0.0.1")
		full = append(full, "--monitoring-addr", m.MonitoringAddr)
	}
	if m.SecureXDSAddr == "" && !hasFlag(args, "secure-xds-addr") {
		m.SecureXDSAddr = FreeAddr(t, "127.0.0.1")
		full = append(full, "--secure-xds-addr", m.SecureXDSAddr)
	}
	// A free port rather than the default 127.0.0.1:15017, so several mizzens
	// (HA replicas, parallel test binaries) can run at once.
	m.WebhookAddr = flagValue(args, "webhook-addr")
	if m.WebhookAddr == "" && !hasFlag(args, "webhook-addr") {
		m.WebhookAddr = FreeAddr(t, "127.0.0.1")
		full = append(full, "--webhook-addr", m.WebhookAddr)
	}
	if flagValue(args, "ca-dir") == "" {
		full = append(full, "--ca-dir", t.TempDir())
	}
	CheckLoopback(t, m.XDSAddr)
	CheckLoopback(t, m.MonitoringAddr)
	full = append(full, args...)
	m.MonitoringURL = "http://" + m.MonitoringAddr
	m.LogPath = filepath.Join(t.TempDir(), "mizzen.log")

	cmd := exec.Command(bin, full...)
	t.Logf("rig: starting %s %s (log %s)", bin, strings.Join(full, " "), m.LogPath)
	m.proc = startProcess(t, "mizzen", cmd, m.LogPath, 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		if m.proc.Exited() {
			return fmt.Errorf("mizzen exited: %v", m.proc.waitErr)
		}
		_, err := m.Get(ctx, "/ready")
		return err
	})
	if err != nil {
		t.Fatalf("rig: mizzen not ready: %v; log:\n%s", err, TailFile(m.LogPath, 40))
	}
	return m
}

// hasFlag reports whether args set --name at all (even to "").
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// flagValue finds --name v / --name=v (or -name) in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// Kill ends mizzen with SIGKILL (a crash: no lease release, streams cut)
// and waits until it is gone.
func (m *Mizzen) Kill() {
	_ = syscall.Kill(-m.proc.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-m.proc.exited:
	case <-time.After(5 * time.Second):
	}
}

// Exited reports whether the mizzen process has ended.
func (m *Mizzen) Exited() bool { return m.proc.Exited() }

// Pid is the process ID of the mizzen process (e.g. to sample its CPU and RSS).
func (m *Mizzen) Pid() int { return m.proc.cmd.Process.Pid }

// Log returns mizzen's output so far.
func (m *Mizzen) Log() string {
	b, _ := os.ReadFile(m.LogPath)
	return string(b)
}

// Get GETs a monitoring path ("/ready", "/debug/...") and returns the body; a
// non-200 answer is an error.
func (m *Mizzen) Get(ctx context.Context, path string) ([]byte, error) {
	return getOK(ctx, m.client, m.MonitoringURL+path, "GET "+path)
}

// Metrics are Prometheus samples keyed by series: `name` or `name{k="v",...}` with
// labels sorted. Histograms and summaries appear as name_count, name_sum and
// name_bucket{le=...} / name{quantile=...}.
type Metrics map[string]float64

// Metrics scrapes /metrics.
func (m *Mizzen) Metrics(ctx context.Context) (Metrics, error) {
	b, err := m.Get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	return ParseMetrics(strings.NewReader(string(b)))
}

// Sum adds up every series of the metric name (any labels); absent is 0.
func (ms Metrics) Sum(name string) float64 {
	var s float64
	for k, v := range ms {
		if seriesName(k) == name {
			s += v
		}
	}
	return s
}

// Has reports whether any series of the metric name is present.
func (ms Metrics) Has(name string) bool {
	for k := range ms {
		if seriesName(k) == name {
			return true
		}
	}
	return false
}

// Names returns the distinct metric names, sorted.
func (ms Metrics) Names() []string {
	set := map[string]bool{}
	for k := range ms {
		set[seriesName(k)] = true
	}
	return sortedKeys(set)
}

func seriesName(series string) string {
	if i := strings.IndexByte(series, '{'); i >= 0 {
		return series[:i]
	}
	return series
}

// ParseMetrics parses the Prometheus text exposition format.
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %v", err)
	}
	out := Metrics{}
	for name, fam := range fams {
		for _, mt := range fam.GetMetric() {
			labels := mt.GetLabel()
			switch fam.GetType() {
			case dto.MetricType_COUNTER:
				out[series(name, labels)] = mt.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[series(name, labels)] = mt.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[series(name, labels)] = mt.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := mt.GetHistogram()
				out[series(name+"_count", labels)] = float64(h.GetSampleCount())
				out[series(name+"_sum", labels)] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[series(name+"_bucket", labels, "le", fmt.Sprint(b.GetUpperBound()))] = float64(b.GetCumulativeCount())
				}
			case dto.MetricType_SUMMARY:
				s := mt.GetSummary()
				out[series(name+"_count", labels)] = float64(s.GetSampleCount())
				out[series(name+"_sum", labels)] = s.GetSampleSum()
				for _, q := range s.GetQuantile() {
					out[series(name, labels, "quantile", fmt.Sprint(q.GetQuantile()))] = q.GetValue()
				}
			}
		}
	}
	return out, nil
}

func series(name string, labels []*dto.LabelPair, extra ...string) string {
	kv := make([]string, 0, len(labels)+1)
	for _, l := range labels {
		kv = append(kv, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		kv = append(kv, fmt.Sprintf("%s=%q", extra[i], extra[i+1]))
	}
	if len(kv) == 0 {
		return name
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// ProxySync is one proxy's row of mizzen's /debug/syncz.
type ProxySync struct {
	Proxy     string              `json:"proxy"`
	Type      string              `json:"type"`
	Namespace string              `json:"namespace"`
	Types     map[string]TypeSync `json:"types"` // by "cds", "eds", "lds", "rds", ...
}

// TypeSync is the sync state of one xDS type for one proxy.
type TypeSync struct {
	State       string `json:"state"` // SYNCED, STALE, NACKED, NOT SENT
	Current     string `json:"current_version"`
	Sent        string `json:"sent_version"`
	Acked       string `json:"acked_version"`
	Resources   int    `json:"resources"`
	NackMessage string `json:"nack_message,omitempty"`
	Acks        int    `json:"acks"`
	Nacks       int    `json:"nacks"`
}

// SyncStatus reads /debug/syncz.
func (m *Mizzen) SyncStatus(ctx context.Context) ([]ProxySync, error) {
	b, err := m.Get(ctx, "/debug/syncz")
	if err != nil {
		return nil, err
	}
	var out []ProxySync
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("parsing /debug/syncz: %v", err)
	}
	return out, nil
}

// ProxySync returns the /debug/syncz row of one proxy; an error if it is not connected.
func (m *Mizzen) ProxySync(ctx context.Context, proxyID string) (*ProxySync, error) {
	all, err := m.SyncStatus(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Proxy == proxyID {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("proxy %s is not connected to mizzen", proxyID)
}
