package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// Issue 6's Prometheus acceptance: a real Prometheus (Debian's package) scrapes
// mizzen's /metrics and two sidecars' stats listeners (15090, the listener
// mizzen sends every proxy, forwarding /stats/prometheus to the sidecar's Envoy
// admin on its pod address); through its HTTP API, pilot_xds counts both
// sidecars and their envoy_cluster_upstream_rq_total grows with the traffic
// sent between them.
func TestPrometheusScrapesMizzenAndSidecars(t *testing.T) {
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	svc := m.AddService(t, rig.ServiceSpec{Name: "metrics-server", Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}},
		Selector: map[string]string{"app": "metrics-server"}})
	server := m.AddWorkload(t, rig.WorkloadSpec{Name: "metrics-server-0", IP: "198.18.6.1", ServiceAccount: "metrics-server",
		Labels: map[string]string{"app": "metrics-server"}, App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "metrics-client-0", IP: "198.18.6.2", ServiceAccount: "metrics-client",
		Labels: map[string]string{"app": "metrics-client"}, Sidecar: true})
	meshUp := time.Since(began)

	// The stats listener answers from the root namespace (15090 is not
	// captured) and forwards only /stats/prometheus to the admin interface.
	for _, w := range []*rig.Workload{server, client} {
		body, status := get(t, ctx, w.StatsURL())
		if status != 200 || !strings.Contains(body, "# TYPE envoy_cluster_upstream_rq_total counter") {
			t.Fatalf("%s: GET %s: %d, body starts %.200q", w.Name, w.StatsURL(), status, body)
		}
		if _, status := get(t, ctx, "http://"+w.StatsAddr()+"/config_dump"); status != 404 {
			t.Errorf("%s: GET /config_dump on the stats port: %d, want 404 (only /stats/prometheus reaches the admin)", w.Name, status)
		}
	}

	promStart := time.Now()
	prom := rig.StartPrometheus(t, rig.PrometheusOptions{Jobs: []rig.ScrapeJob{
		{Name: "mizzen", Targets: []string{m.Mizzen.MonitoringAddr}},
		{Name: "envoy", MetricsPath: "/stats/prometheus", Targets: []string{server.StatsAddr(), client.StatsAddr()}},
	}})
	if err := prom.WaitTargetsUp(ctx, 3); err != nil {
		t.Fatalf("scrape targets: %v", err)
	}
	targetsUp := time.Since(promStart)

	// mizzen's own metric, as istiod names it: connected proxies by version.
	if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		v, err := prom.QueryValue(ctx, `sum(pilot_xds{job="mizzen"})`)
		if err != nil {
			return err
		}
		if v < 2 {
			return fmt.Errorf("sum(pilot_xds) = %v, want ≥ 2", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Each sidecar's request count on the cluster the traffic takes: the
	// client's outbound cluster, the server's inbound one.
	outbound := fmt.Sprintf(`envoy_cluster_upstream_rq_total{job="envoy",instance=%q,cluster_name="outbound|80||%s"}`, client.StatsAddr(), svc.Hostname)
	inbound := fmt.Sprintf(`envoy_cluster_upstream_rq_total{job="envoy",instance=%q,cluster_name="inbound|8080||"}`, server.StatsAddr())
	before := map[string]float64{}
	for _, q := range []string{outbound, inbound} {
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			v, err := prom.QueryValue(ctx, q)
			before[q] = v
			return err
		}); err != nil {
			t.Fatalf("before traffic: %v", err)
		}
	}

	const n = 50
	res, err := client.Load(ctx, rig.LoadSpec{URL: svc.URL("/"), N: n, Concurrency: 2, Duration: 20 * time.Second, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != n || res.Non2xx() != 0 {
		t.Fatalf("traffic client → server: %s", res.Summary())
	}
	sent := time.Now()
	for _, q := range []string{outbound, inbound} {
		var last float64
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			v, err := prom.QueryValue(ctx, q)
			if err != nil {
				return err
			}
			last = v
			if v < before[q]+n {
				return fmt.Errorf("%s = %v, was %v before %d requests", q, v, before[q], n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v → %v", q, before[q], last)
	}
	t.Logf("mesh up %s, Prometheus targets up %s after start, counters seen %s after the traffic, test %s",
		meshUp.Round(time.Millisecond), targetsUp.Round(time.Millisecond), time.Since(sent).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// get GETs url (loopback or the rig's pod network) and returns body and status.
func get(t *testing.T, ctx context.Context, url string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b), resp.StatusCode
}
