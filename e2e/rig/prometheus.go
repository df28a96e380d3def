package rig

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A real Prometheus (Debian's `prometheus` package) scraping the parts of a
// test: started on 127.0.0.1 with its config and TSDB in a temp dir, stopped
// when the test ends.

// PrometheusInstallHint says how to get the Prometheus binary.
const PrometheusInstallHint = "install it with `make prometheus` (apt-get install prometheus), " +
	"or point PROMETHEUS_BIN at a prometheus 2.x binary"

// PrometheusPath finds Prometheus: $PROMETHEUS_BIN, else /usr/bin/prometheus
// (Debian's package), else `prometheus` on $PATH.
func PrometheusPath() (string, error) {
	if p := os.Getenv("PROMETHEUS_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("PROMETHEUS_BIN=%s: %v; %s", p, err, PrometheusInstallHint)
		}
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus", nil
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("prometheus not found (not /usr/bin/prometheus, not on PATH); %s", PrometheusInstallHint)
}

// ScrapeJob is one scrape_config: static targets ("ip:port") on one path.
type ScrapeJob struct {
	Name        string
	MetricsPath string // default /metrics
	Targets     []string
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	Jobs []ScrapeJob
	// ScrapeInterval is the global scrape and evaluation interval (default 1 s).
	ScrapeInterval time.Duration
	// StartTimeout bounds the wait for /-/ready (default 20 s).
	StartTimeout time.Duration
}

// Prometheus is a running Prometheus.
type Prometheus struct {
	Addr    string // 127.0.0.1:<port> of its web/API listener
	URL     string // http://Addr
	Dir     string // config and TSDB
	LogPath string

	proc   *process
	client *http.Client
}

// StartPrometheus writes a config scraping opts.Jobs, starts Prometheus and
// waits until /-/ready answers 200. Targets must be on loopback or the rig's
// pod network (NetworkCIDR). A missing binary fails the test (never skips).
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin, err := PrometheusPath()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 20 * time.Second
	}
	_, rigNet, _ := net.ParseCIDR(NetworkCIDR)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\nscrape_configs:\n",
		promDuration(opts.ScrapeInterval), promDuration(opts.ScrapeInterval), promDuration(opts.ScrapeInterval))
	for _, j := range opts.Jobs {
		if j.MetricsPath == "" {
			j.MetricsPath = "/metrics"
		}
		var targets []string
		for _, target := range j.Targets {
			host, _, err := net.SplitHostPort(target)
			ip := net.ParseIP(host)
			if err != nil || ip == nil || !(ip.IsLoopback() || rigNet.Contains(ip)) {
				t.Fatalf("rig: prometheus target %q of job %s is not ip:port on loopback or %s", target, j.Name, NetworkCIDR)
			}
			targets = append(targets, strconv.Quote(target))
		}
		fmt.Fprintf(&cfg, "- job_name: %q\n  metrics_path: %q\n  static_configs:\n  - targets: [%s]\n",
			j.Name, j.MetricsPath, strings.Join(targets, ", "))
	}

	dir := t.TempDir()
	p := &Prometheus{Dir: dir, LogPath: filepath.Join(dir, "prometheus.log"), client: &http.Client{Timeout: 5 * time.Second}}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatalf("rig: writing prometheus config: %v", err)
	}
	p.Addr = FreeAddr(t, "127.0.0.1")
	p.URL = "http://" + p.Addr
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.Addr,
		"--log.level=info",
	)
	t.Logf("rig: starting prometheus %s on %s (config %s)", bin, p.Addr, cfgPath)
	p.proc = startProcess(t, "prometheus", cmd, p.LogPath, 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout)
	defer cancel()
	if err := Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		if p.proc.Exited() {
			return fmt.Errorf("prometheus exited: %v", p.proc.waitErr)
		}
		_, err := getOK(ctx, p.client, p.URL+"/-/ready", "prometheus /-/ready")
		return err
	}); err != nil {
		t.Fatalf("rig: prometheus not ready: %v; log:\n%s", err, TailFile(p.LogPath, 40))
	}
	return p
}

// promDuration spells d the way Prometheus reads durations ("1s", "500ms").
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// PromSample is one series of an instant query's vector result.
type PromSample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant PromQL query and returns its vector (a scalar result
// comes back as one sample without labels).
func (p *Prometheus) Query(ctx context.Context, promql string) ([]PromSample, error) {
	body, err := getOK(ctx, p.client, p.URL+"/api/v1/query?query="+url.QueryEscape(promql), "prometheus query "+promql)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("prometheus query %s: %v: %s", promql, err, body)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("prometheus query %s: %s %s", promql, resp.Status, resp.Error)
	}
	switch resp.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(resp.Data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]PromSample, 0, len(vec))
		for _, s := range vec {
			v, err := promValue(s.Value)
			if err != nil {
				return nil, fmt.Errorf("prometheus query %s: %v", promql, err)
			}
			out = append(out, PromSample{Labels: s.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var sc [2]any
		if err := json.Unmarshal(resp.Data.Result, &sc); err != nil {
			return nil, err
		}
		v, err := promValue(sc)
		if err != nil {
			return nil, err
		}
		return []PromSample{{Value: v}}, nil
	}
	return nil, fmt.Errorf("prometheus query %s: result type %q", promql, resp.Data.ResultType)
}

func promValue(v [2]any) (float64, error) {
	s, ok := v[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v[1])
	}
	return strconv.ParseFloat(s, 64)
}

// QueryValue runs a query that must return exactly one sample and returns its value.
func (p *Prometheus) QueryValue(ctx context.Context, promql string) (float64, error) {
	ss, err := p.Query(ctx, promql)
	if err != nil {
		return 0, err
	}
	if len(ss) != 1 {
		return 0, fmt.Errorf("prometheus query %s: %d samples, want 1: %v", promql, len(ss), ss)
	}
	return ss[0].Value, nil
}

// PromTarget is one active scrape target as /api/v1/targets reports it.
type PromTarget struct {
	Job       string
	ScrapeURL string
	Health    string // "up", "down", "unknown"
	LastError string
}

// Targets returns the active targets.
func (p *Prometheus) Targets(ctx context.Context) ([]PromTarget, error) {
	body, err := getOK(ctx, p.client, p.URL+"/api/v1/targets?state=active", "prometheus targets")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				ScrapeURL string            `json:"scrapeUrl"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("prometheus targets: %v: %s", err, body)
	}
	var out []PromTarget
	for _, at := range resp.Data.ActiveTargets {
		out = append(out, PromTarget{Job: at.Labels["job"], ScrapeURL: at.ScrapeURL, Health: at.Health, LastError: at.LastError})
	}
	return out, nil
}

// WaitTargetsUp waits (≤ ctx) until n targets are active and every one is up.
func (p *Prometheus) WaitTargetsUp(ctx context.Context, n int) error {
	return Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		ts, err := p.Targets(ctx)
		if err != nil {
			return err
		}
		if len(ts) != n {
			return fmt.Errorf("%d active targets, want %d: %+v", len(ts), n, ts)
		}
		for _, tg := range ts {
			if tg.Health != "up" {
				return fmt.Errorf("target %s (%s) is %s: %s", tg.ScrapeURL, tg.Job, tg.Health, tg.LastError)
			}
		}
		return nil
	})
}
