// Acceptance tests of the spine: a config dir with examples/bookinfo, the mizzen
// binary serving it over ADS, a real Envoy as the Istio ingress gateway, and echo
// apps as the bookinfo workloads, all on loopback. Each test sets up and tears down
// its own world; they must not run in parallel (the app addresses are fixed).
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

func TestMain(m *testing.M) { rig.Main(m) }

const reviewsHost = "reviews.example.com"

// reviewsVS is a VirtualService for reviews.example.com on the bookinfo gateway with
// the given `http:` section (YAML, indented by two spaces under spec).
func reviewsVS(name, http string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: %s
  namespace: default
spec:
  hosts:
  - %s
  gateways:
  - bookinfo-gateway
  http:
%s`, name, reviewsHost, http)
}

// allTo routes everything to one reviews subset.
func allTo(subset string) string {
	return fmt.Sprintf(`  - route:
    - destination:
        host: reviews
        subset: %s
`, subset)
}

const splitV1V2 = `  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 90
    - destination:
        host: reviews
        subset: v2
      weight: 10
`

const headerMatch = `  - match:
    - headers:
        username:
          exact: nolen
    route:
    - destination:
        host: reviews
        subset: v1
  - route:
    - destination:
        host: reviews
        subset: v2
`

// eventually polls f every 50 ms for at most timeout and fails the test with f's
// last error if it never succeeds.
func eventually(t *testing.T, timeout time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := rig.Eventually(ctx, 50*time.Millisecond, f); err != nil {
		t.Fatalf("%s (waited %s): %v", what, timeout, err)
	}
}

// expectVersion returns a check that a request to reviews.example.com (with headers)
// is answered 200 by reviews of the given version.
func expectVersion(b *rig.BookinfoEnv, headers map[string]string, version string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		r, err := b.Get(ctx, reviewsHost, "/reviews/0", headers)
		if err != nil {
			return err
		}
		if r.Status != 200 || r.Body.Service != "reviews" || r.Version != version {
			return fmt.Errorf("got %d from %s/%s, want 200 from reviews/%s", r.Status, r.Body.Service, r.Version, version)
		}
		return nil
	}
}

func TestBookinfoGatewayRouting(t *testing.T) {
	b := rig.Bookinfo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, c := range []struct {
		path    string
		status  int
		service string // "" = not an echo answer
	}{
		{"/productpage", 200, "productpage"},
		{"/static/x", 200, "productpage"},
		{"/static/css/style.css", 200, "productpage"},
		{"/login", 200, "productpage"},
		{"/logout", 200, "productpage"},
		{"/api/v1/products", 200, "productpage"},
		{"/api/v1/products/1/reviews", 200, "productpage"},
		{"/", 404, ""},
		{"/productpage/x", 404, ""}, // exact match only
		{"/nothing", 404, ""},
	} {
		r, err := b.Get(ctx, "", c.path, nil)
		if err != nil {
			t.Errorf("GET %s: %v", c.path, err)
			continue
		}
		if r.Status != c.status || r.Body.Service != c.service {
			t.Errorf("GET %s = %d from %q, want %d from %q (body %.200s)", c.path, r.Status, r.Body.Service, c.status, c.service, r.Raw)
			continue
		}
		if c.service != "" && r.Body.Path != c.path {
			t.Errorf("GET %s: app saw path %q", c.path, r.Body.Path)
		}
	}
}

func TestBookinfoReviewsSplitAndHeaderMatch(t *testing.T) {
	b := rig.Bookinfo(t)

	// 90/10 split between v1 and v2.
	b.WriteConfig(t, "reviews-split.yaml", reviewsVS("reviews-split", splitV1V2))
	eventually(t, 10*time.Second, "reviews.example.com served by reviews", func(ctx context.Context) error {
		r, err := b.Get(ctx, reviewsHost, "/reviews/0", nil)
		if err != nil {
			return err
		}
		if r.Status != 200 || r.Body.Service != "reviews" {
			return fmt.Errorf("got %d from %q", r.Status, r.Body.Service)
		}
		return nil
	})

	const n = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		r, err := b.Get(ctx, reviewsHost, "/reviews/0", nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if r.Status != 200 {
			t.Fatalf("request %d: status %d: %.200s", i, r.Status, r.Raw)
		}
		counts[r.Version]++
	}
	t.Logf("split over %d requests: %s", n, rig.FormatCounts(counts))
	if counts["v1"]+counts["v2"] != n {
		t.Errorf("answers from outside v1/v2: %s", rig.FormatCounts(counts))
	}
	share := 100 * float64(counts["v2"]) / n
	if math.Abs(share-10) > 4.5 {
		t.Errorf("v2 share = %.1f%%, want 10%% ± 4.5 (4.7σ at N=1000)", share)
	}

	// Replace it: username: nolen → v1, everyone else → v2.
	b.WriteConfig(t, "reviews-split.yaml", reviewsVS("reviews-split", headerMatch))
	nolen := map[string]string{"username": "nolen"}
	eventually(t, 10*time.Second, "header match in force", func(ctx context.Context) error {
		if err := expectVersion(b, nolen, "v1")(ctx); err != nil {
			return fmt.Errorf("with username nolen: %v", err)
		}
		// Ten in a row: under the old 90/10 split one v2 answer is a 10% chance.
		for i := 0; i < 10; i++ {
			if err := expectVersion(b, nil, "v2")(ctx); err != nil {
				return fmt.Errorf("without username: %v", err)
			}
		}
		return nil
	})
	for i := 0; i < 50; i++ {
		if err := expectVersion(b, nolen, "v1")(ctx); err != nil {
			t.Fatalf("username nolen, request %d: %v", i, err)
		}
		if err := expectVersion(b, map[string]string{"username": "jason"}, "v2")(ctx); err != nil {
			t.Fatalf("username jason, request %d: %v", i, err)
		}
		if err := expectVersion(b, nil, "v2")(ctx); err != nil {
			t.Fatalf("no username, request %d: %v", i, err)
		}
	}
}

// TestBookinfoLiveUpdate rewrites a VirtualService file under load: the new route
// must serve within 1 s of the rename, and no request may fail meanwhile.
func TestBookinfoLiveUpdate(t *testing.T) {
	b := rig.Bookinfo(t)
	b.WriteConfig(t, "reviews-live.yaml", reviewsVS("reviews-live", allTo("v1")))
	eventually(t, 10*time.Second, "all to v1 in force", expectVersion(b, nil, "v1"))

	type sample struct {
		start, end time.Time
		status     int
		version    string
		err        error
	}
	const (
		workers     = 4
		maxRequests = 50000
		maxDuration = 20 * time.Second
	)
	var (
		mu      sync.Mutex
		samples []sample
		sent    atomic.Int64
		stop    atomic.Bool
		firstV3 = make(chan struct{})
		v3Once  sync.Once
		wg      sync.WaitGroup
	)
	loopStart := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && sent.Add(1) <= maxRequests && time.Since(loopStart) < maxDuration {
				s := sample{start: time.Now()}
				r, err := b.Get(context.Background(), reviewsHost, "/reviews/0", nil) // client timeout: 5 s
				s.end = time.Now()
				if err != nil {
					s.err = err
				} else {
					s.status, s.version = r.Status, r.Version
				}
				if s.version == "v3" {
					v3Once.Do(func() { close(firstV3) })
				}
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(samples) }

	// Let the loop run a moment on the old route, then switch.
	for i := 0; i < 100 && count() < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	writeAt := b.WriteConfig(t, "reviews-live.yaml", reviewsVS("reviews-live", allTo("v3")))
	select {
	case <-firstV3:
	case <-time.After(5 * time.Second):
	}
	// Keep going until well past the 1 s budget, to see that v1 is really gone.
	if d := time.Until(writeAt.Add(1500 * time.Millisecond)); d > 0 {
		time.Sleep(d)
	}
	stop.Store(true)
	wg.Wait()

	var (
		failures      []sample
		first         time.Time
		lateV1, total int
		counts        = map[string]int{}
	)
	for _, s := range samples {
		total++
		counts[s.version]++
		if s.err != nil || s.status != 200 || (s.version != "v1" && s.version != "v3") {
			failures = append(failures, s)
		}
		if s.version == "v3" && (first.IsZero() || s.end.Before(first)) {
			first = s.end
		}
		if s.version == "v1" && s.start.After(writeAt.Add(time.Second)) {
			lateV1++
		}
	}
	t.Logf("%d requests in %s: %s", total, time.Since(loopStart).Round(time.Millisecond), rig.FormatCounts(counts))
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more failures", len(failures)-10)
			break
		}
		t.Errorf("failed request at write%+v: status %d version %q err %v", f.start.Sub(writeAt).Round(time.Millisecond), f.status, f.version, f.err)
	}
	if first.IsZero() {
		t.Fatalf("no request reached v3 within 5 s of rewriting reviews-live.yaml")
	}
	lag := first.Sub(writeAt)
	t.Logf("first v3 answer %s after the rename", lag.Round(time.Millisecond))
	if lag > time.Second {
		t.Errorf("first v3 answer %s after the rename, want ≤ 1s", lag)
	}
	if lateV1 > 0 {
		t.Errorf("%d requests sent more than 1 s after the rename still reached v1", lateV1)
	}
}

func TestBookinfoEnvoyAdmin(t *testing.T) {
	b := rig.Bookinfo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	wantClusters := []string{
		"outbound|9080||productpage.default.svc.cluster.local",
		"outbound|9080||details.default.svc.cluster.local",
		"outbound|9080||ratings.default.svc.cluster.local",
		"outbound|9080||reviews.default.svc.cluster.local",
		"outbound|9080|v1|reviews.default.svc.cluster.local",
		"outbound|9080|v2|reviews.default.svc.cluster.local",
		"outbound|9080|v3|reviews.default.svc.cluster.local",
	}
	waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
	defer waitCancel()
	if err := b.Gateway.WaitForResources(waitCtx, wantClusters, []string{"0.0.0.0_80"}, []string{"http.80"}); err != nil {
		t.Fatalf("gateway config: %v", err)
	}

	dump, err := b.Gateway.ConfigDump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := dump.ActiveListeners()["0.0.0.0_80"]
	addr, _ := l["address"].(map[string]any)
	sock, _ := addr["socket_address"].(map[string]any)
	if sock["address"] != b.GatewayIP || fmt.Sprint(sock["port_value"]) != "80" {
		t.Errorf("listener 0.0.0.0_80 address = %v, want %s:80 (MIZZEN_GATEWAY_BIND_IP)", sock, b.GatewayIP)
	}

	stats, err := b.Gateway.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rejected []string
	for _, name := range []string{"cluster_manager.cds.update_rejected", "listener_manager.lds.update_rejected"} {
		if _, ok := stats[name]; !ok {
			t.Errorf("stat %s missing", name)
		}
	}
	for name, v := range stats {
		if strings.HasSuffix(name, ".update_rejected") && v != 0 {
			rejected = append(rejected, fmt.Sprintf("%s=%d", name, v))
		}
	}
	if len(rejected) > 0 {
		slices.Sort(rejected)
		t.Errorf("Envoy rejected config: %v", rejected)
	}
}

// TestBookinfoBrokenYAML drops an unparseable file into the config dir: mizzen must
// report it and keep serving the last good config, and Envoy must see no change.
func TestBookinfoBrokenYAML(t *testing.T) {
	b := rig.Bookinfo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const broken = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: broken
  namespace: default
spec:
  hosts: [reviews.example.com
  http:
	- route: {{
`
	var probe any
	if err := yaml.Unmarshal([]byte(broken), &probe); err == nil {
		t.Fatalf("test bug: the broken YAML parses")
	}

	// Let things settle, then take Envoy's view before the change.
	time.Sleep(500 * time.Millisecond)
	before := envoyView(ctx, t, b)
	beforeErrors := configErrors(ctx, t, b)

	b.WriteConfig(t, "broken.yaml", broken)
	eventually(t, 5*time.Second, "mizzen reports broken.yaml", func(ctx context.Context) error {
		if n := configErrors(ctx, t, b); n <= beforeErrors {
			return fmt.Errorf("mizzen_config_errors_total = %v, want > %v", n, beforeErrors)
		}
		if !strings.Contains(b.Mizzen.Log(), "broken.yaml") {
			return fmt.Errorf("mizzen's log does not mention broken.yaml")
		}
		return nil
	})
	// Give a wrong push time to arrive before comparing.
	time.Sleep(time.Second)

	r, err := b.Get(ctx, "", "/productpage", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 200 || r.Body.Service != "productpage" {
		t.Errorf("GET /productpage after broken.yaml = %d from %q, want 200 from productpage", r.Status, r.Body.Service)
	}
	after := envoyView(ctx, t, b)
	if before.routes != after.routes {
		t.Errorf("Envoy's route configs changed after broken.yaml:\nbefore: %s\nafter:  %s", before.routes, after.routes)
	}
	if !slices.Equal(before.clusters, after.clusters) || !slices.Equal(before.listeners, after.listeners) {
		t.Errorf("Envoy's clusters/listeners changed after broken.yaml: %v %v -> %v %v",
			before.clusters, before.listeners, after.clusters, after.listeners)
	}
	if !maps.Equal(before.versions, after.versions) {
		t.Logf("note: route config versions moved %v -> %v (content unchanged)", before.versions, after.versions)
	}
	m, err := b.Mizzen.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := m.Sum("pilot_total_xds_rejects"); n != 0 {
		t.Errorf("pilot_total_xds_rejects = %v, want 0", n)
	}
	if n := m.Sum("mizzen_config_errors_total"); n <= 0 {
		t.Errorf("mizzen_config_errors_total = %v, want > 0", n)
	}
}

type envoyState struct {
	routes              string // route_config protos as JSON
	versions            map[string]string
	clusters, listeners []string
}

func envoyView(ctx context.Context, t *testing.T, b *rig.BookinfoEnv) envoyState {
	t.Helper()
	dump, err := b.Gateway.ConfigDump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	routes, err := json.Marshal(dump.RouteConfigs())
	if err != nil {
		t.Fatal(err)
	}
	var s envoyState
	s.routes = string(routes)
	s.versions = dump.RouteConfigVersions()
	for name := range dump.DynamicActiveClusters() {
		s.clusters = append(s.clusters, name)
	}
	for name := range dump.ActiveListeners() {
		s.listeners = append(s.listeners, name)
	}
	slices.Sort(s.clusters)
	slices.Sort(s.listeners)
	return s
}

func configErrors(ctx context.Context, t *testing.T, b *rig.BookinfoEnv) float64 {
	t.Helper()
	m, err := b.Mizzen.Metrics(ctx)
	if err != nil {
		t.Fatalf("scraping mizzen metrics: %v", err)
	}
	return m.Sum("mizzen_config_errors_total")
}

func TestBookinfoMetrics(t *testing.T) {
	b := rig.Bookinfo(t)
	// A change, so that at least one push after the first connection is measured.
	b.WriteConfig(t, "reviews-split.yaml", reviewsVS("reviews-split", allTo("v2")))
	eventually(t, 10*time.Second, "all to v2 in force", expectVersion(b, nil, "v2"))

	var last rig.Metrics
	eventually(t, 10*time.Second, "istiod metrics", func(ctx context.Context) error {
		m, err := b.Mizzen.Metrics(ctx)
		if err != nil {
			return err
		}
		last = m
		var problems []string
		for _, name := range []string{"pilot_xds", "pilot_xds_pushes", "pilot_services", "pilot_proxy_convergence_time_count"} {
			if !m.Has(name) {
				problems = append(problems, name+" missing")
			}
		}
		if v := m.Sum("pilot_xds"); v < 1 {
			problems = append(problems, fmt.Sprintf("pilot_xds = %v, want ≥ 1 (the gateway is connected)", v))
		}
		if v := m.Sum("pilot_xds_pushes"); v <= 0 {
			problems = append(problems, fmt.Sprintf("pilot_xds_pushes = %v, want > 0", v))
		}
		if v := m.Sum("pilot_services"); v < 4 {
			problems = append(problems, fmt.Sprintf("pilot_services = %v, want ≥ 4 (bookinfo)", v))
		}
		if v := m.Sum("pilot_proxy_convergence_time_count"); v <= 0 {
			problems = append(problems, fmt.Sprintf("pilot_proxy_convergence_time_count = %v, want > 0", v))
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s", strings.Join(problems, "; "))
		}
		return nil
	})
	t.Logf("metric names: %v", last.Names())
}
