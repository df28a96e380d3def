package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// Issue 4's traffic-management acceptance through real sidecars, on one mesh:
// a DestinationRule's 75/25 subset split, sourceLabels routing, redirect and
// rewrite, timeout and retries, a ServiceEntry to an external host with
// ALLOW_ANY / REGISTRY_ONLY, Sidecar egress scoping, and invalid config that
// must never reach (or be NACKed by) a sidecar. Every subtest leaves the mesh
// as the next one expects; they run in order.
//
//	default:  apps-v1, apps-v2 (app=apps)   Services apps, apps-v1, apps-v2, apps-nosubset
//	          slow (every answer after 3 s)  Service slow
//	          flaky (503 to the first 2 requests on each of 8080, 8081)  Service flaky (80, 81)
//	          sleep-v1, sleep-v2 (clients, app=sleep, version v1/v2)
//	scoped:   local-v1 (Service local), scoped-client — a Sidecar limits them to ./* and istio-system/*
//	external: ext-1 198.18.3.1 and ext-2 198.18.3.2, no sidecar, no Service: hosts outside the mesh
func TestMeshTrafficManagement(t *testing.T) {
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	http80 := []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}
	apps := m.AddService(t, rig.ServiceSpec{Name: "apps", Ports: http80, Selector: map[string]string{"app": "apps"}})
	appsV1 := m.AddService(t, rig.ServiceSpec{Name: "apps-v1", Ports: http80, Selector: map[string]string{"app": "apps", "version": "v1"}})
	appsV2 := m.AddService(t, rig.ServiceSpec{Name: "apps-v2", Ports: http80, Selector: map[string]string{"app": "apps", "version": "v2"}})
	noSubset := m.AddService(t, rig.ServiceSpec{Name: "apps-nosubset", Ports: http80, Selector: map[string]string{"app": "apps"}})
	slow := m.AddService(t, rig.ServiceSpec{Name: "slow", Ports: http80, Selector: map[string]string{"app": "slow"}})
	flaky := m.AddService(t, rig.ServiceSpec{Name: "flaky", Selector: map[string]string{"app": "flaky"}, Ports: []rig.ServicePort{
		{Name: "http", Port: 80, TargetPort: 8080}, {Name: "http-noretry", Port: 81, TargetPort: 8081}}})
	local := m.AddService(t, rig.ServiceSpec{Name: "local", Namespace: "scoped", Ports: http80, Selector: map[string]string{"app": "local"}})

	sidecar := func(name, ns, ip string, labels map[string]string, app rig.AppSpec) *rig.Workload {
		return m.AddWorkload(t, rig.WorkloadSpec{Name: name, Namespace: ns, IP: ip, Labels: labels, App: app, Sidecar: true})
	}
	app8080 := rig.AppSpec{Ports: []int{8080}}
	appsV1Pod := sidecar("apps-v1", "", "198.18.4.1", map[string]string{"app": "apps", "version": "v1"}, app8080)
	appsV2Pod := sidecar("apps-v2", "", "198.18.4.2", map[string]string{"app": "apps", "version": "v2"}, app8080)
	slowPod := sidecar("slow", "", "198.18.4.3", map[string]string{"app": "slow"}, rig.AppSpec{Ports: []int{8080}, Delay: 3 * time.Second})
	flakyPod := sidecar("flaky", "", "198.18.4.4", map[string]string{"app": "flaky"}, rig.AppSpec{Ports: []int{8080, 8081}, FailFirst: 2})
	sleepV1 := sidecar("sleep-v1", "", "198.18.4.10", map[string]string{"app": "sleep", "version": "v1"}, rig.AppSpec{})
	sleepV2 := sidecar("sleep-v2", "", "198.18.4.11", map[string]string{"app": "sleep", "version": "v2"}, rig.AppSpec{})
	localPod := sidecar("local-v1", "scoped", "198.18.5.1", map[string]string{"app": "local"}, app8080)
	scopedClient := sidecar("scoped-client", "scoped", "198.18.5.10", map[string]string{"app": "scoped-client"}, rig.AppSpec{})
	ext1 := m.AddWorkload(t, rig.WorkloadSpec{Name: "ext-1", Namespace: "external", IP: "198.18.3.1",
		Labels: map[string]string{"app": "ext-1"}, App: rig.AppSpec{Ports: []int{8080}}})
	ext2 := m.AddWorkload(t, rig.WorkloadSpec{Name: "ext-2", Namespace: "external", IP: "198.18.3.2",
		Labels: map[string]string{"app": "ext-2"}, App: rig.AppSpec{Ports: []int{80, 8080}}})
	sidecars := []*rig.Workload{appsV1Pod, appsV2Pod, slowPod, flakyPod, sleepV1, sleepV2, localPod, scopedClient}
	t.Logf("mesh up in %s", time.Since(began).Round(time.Millisecond))

	waitForEndpoint(t, ctx, sleepV1.Envoy, "outbound|80||"+apps.Hostname, appsV1Pod.IP+":8080", true)
	waitForEndpoint(t, ctx, sleepV1.Envoy, "outbound|80||"+apps.Hostname, appsV2Pod.IP+":8080", true)
	waitForEndpoint(t, ctx, sleepV1.Envoy, "outbound|81||"+flaky.Hostname, flakyPod.IP+":8081", true)
	waitForEndpoint(t, ctx, sleepV2.Envoy, "outbound|80||"+apps.Hostname, appsV2Pod.IP+":8080", true)
	waitForEndpoint(t, ctx, scopedClient.Envoy, "outbound|80||"+local.Hostname, localPod.IP+":8080", true)

	t.Run("75/25 subset split of a DestinationRule", func(t *testing.T) {
		m.API.Apply(t, appsDestinationRule+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: apps, namespace: default}
spec:
  hosts: [apps]
  http:
  - name: split-75-25
    route:
    - destination: {host: apps, subset: v1}
      weight: 75
    - destination: {host: apps, subset: v2}
      weight: 25
`)
		waitForRouteNamed(t, ctx, sleepV1.Envoy, "80", "split-75-25", true)
		waitForEndpoint(t, ctx, sleepV1.Envoy, "outbound|80|v1|"+apps.Hostname, appsV1Pod.IP+":8080", true)
		waitForEndpoint(t, ctx, sleepV1.Envoy, "outbound|80|v2|"+apps.Hostname, appsV2Pod.IP+":8080", true)
		waitForEndpoint(t, ctx, sleepV1.Envoy, "outbound|80|v1|"+apps.Hostname, appsV2Pod.IP+":8080", false)
		syncedAll(t, ctx, sleepV1)
		res, err := sleepV1.Load(ctx, rig.LoadSpec{URL: apps.URL("/"), N: 1000, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("75/25: %s", res.Summary())
		if len(res.Records) != 1000 || res.Non2xx() != 0 {
			t.Fatalf("%d records, %d non-2xx (status %v, errors %v)", len(res.Records), res.Non2xx(), res.StatusCounts(), res.Errors(3))
		}
		if share := res.Share("v2"); share < 0.19 || share > 0.31 {
			t.Errorf("v2 share %.3f, want 0.25 ± 0.06 (4.4σ at N=1000)", share)
		}
	})

	t.Run("sourceLabels: client v1 to subset v1, others to v2", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: apps, namespace: default}
spec:
  hosts: [apps]
  http:
  - name: from-v1
    match:
    - sourceLabels: {app: sleep, version: v1}
    route:
    - destination: {host: apps, subset: v1}
  - name: others
    route:
    - destination: {host: apps, subset: v2}
`)
		// The match is resolved per proxy: only sleep-v1's route table has it.
		waitForRouteNamed(t, ctx, sleepV1.Envoy, "80", "from-v1", true)
		waitForRouteNamed(t, ctx, sleepV2.Envoy, "80", "others", true)
		waitForRouteNamed(t, ctx, sleepV2.Envoy, "80", "from-v1", false)
		syncedAll(t, ctx, sleepV1)
		syncedAll(t, ctx, sleepV2)
		for _, c := range []struct {
			client *rig.Workload
			want   string
		}{{sleepV1, "v1"}, {sleepV2, "v2"}} {
			res, err := c.client.Load(ctx, rig.LoadSpec{URL: apps.URL("/"), N: 100, Concurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("from %s: %s", c.client.Name, res.Summary())
			if got := res.VersionCounts()[c.want]; got != 100 {
				t.Errorf("from %s: %s, want all 100 from %s", c.client.Name, res.Summary(), c.want)
			}
		}
	})

	t.Run("redirect 301 with Location; rewrite reaches the backend with the new path", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: apps-v1, namespace: default}
spec:
  hosts: [apps-v1]
  http:
  - name: moved
    match: [{uri: {exact: /moved}}]
    redirect: {uri: /landing, authority: apps-v2.default.svc.cluster.local}
  - name: found
    match: [{uri: {exact: /found}}]
    redirect: {uri: /landing, redirectCode: 302}
  - name: old-api
    match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/, authority: apps-v1.rewritten.test}
    route: [{destination: {host: apps-v1}}]
  - name: apps-v1-rest
    route: [{destination: {host: apps-v1}}]
`)
		waitForRouteNamed(t, ctx, sleepV1.Envoy, "80", "moved", true)
		syncedAll(t, ctx, sleepV1)

		status, hdr, body, err := sleepV1.HTTP(ctx, "GET", appsV1.URL("/moved"), nil)
		if err != nil {
			t.Fatal(err)
		}
		loc := hdr.Get("Location")
		t.Logf("GET apps-v1/moved: %d Location %q", status, loc)
		if want := "http://apps-v2.default.svc.cluster.local/landing"; status != 301 || loc != want {
			t.Errorf("GET apps-v1/moved: %d Location %q, want 301 %q (body %q)", status, loc, want, body)
		}
		if hdr.Get("x-echo-version") != "" {
			t.Errorf("the redirect came from a backend (%s), not from the sidecar", hdr.Get("x-echo-version"))
		}
		// redirectCode; without authority the Location keeps the request's Host
		// (the client sends <cluster ip>:80, as the URL names the port).
		requestHost := net.JoinHostPort(appsV1.ClusterIP, "80")
		status, hdr, _, err = sleepV1.HTTP(ctx, "GET", appsV1.URL("/found"), nil)
		if want := "http://" + requestHost + "/landing"; err != nil || status != 302 || hdr.Get("Location") != want {
			t.Errorf("GET apps-v1/found: %d Location %q %v, want 302 %q", status, hdr.Get("Location"), err, want)
		}
		// Follow the 301 as a client would: the Location's authority names apps-v2.
		status, r, err := sleepV1.Echo(ctx, "GET", appsV2.URL("/landing"), map[string]string{"Host": "apps-v2.default.svc.cluster.local"})
		if err != nil || status != 200 || r.Version != "v2" || r.Path != "/landing" {
			t.Errorf("following the redirect: %d %v %+v", status, err, r)
		}

		status, r, err = sleepV1.Echo(ctx, "GET", appsV1.URL("/old/page?q=1"), nil)
		if err != nil || status != 200 {
			t.Fatalf("GET apps-v1/old/page: %d %v", status, err)
		}
		t.Logf("GET apps-v1/old/page?q=1 reached %s as %s, Host %s (x-envoy-original-path %q)", r.Pod, r.Path, r.Host, r.Header("x-envoy-original-path"))
		if r.Pod != "apps-v1" || r.Path != "/new/page?q=1" || r.Host != "apps-v1.rewritten.test" {
			t.Errorf("rewrite: backend %s saw %q, Host %q, want apps-v1 to see /new/page?q=1, Host apps-v1.rewritten.test", r.Pod, r.Path, r.Host)
		}
		status, r, err = sleepV1.Echo(ctx, "GET", appsV1.URL("/other"), nil)
		if err != nil || status != 200 || r.Path != "/other" || r.Host != requestHost {
			t.Errorf("GET apps-v1/other (no rewrite): %d %v %+v", status, err, r)
		}
	})

	t.Run("timeout 1s on a 3s backend: 504 in about 1s", func(t *testing.T) {
		// Without a timeout (Istio's default: none) the slow answer arrives.
		res, err := sleepV1.Load(ctx, rig.LoadSpec{URL: slow.URL("/"), N: 1, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != 1 || res.Records[0].Status != 200 || res.Latency(0) < 3*time.Second {
			t.Fatalf("without a timeout: %s, want one 200 after ≥ 3s", res.Summary())
		}
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: slow, namespace: default}
spec:
  hosts: [slow]
  http:
  - name: slow-timeout
    timeout: 1s
    route: [{destination: {host: slow}}]
`)
		waitForRouteNamed(t, ctx, sleepV1.Envoy, "80", "slow-timeout", true)
		syncedAll(t, ctx, sleepV1)
		res, err = sleepV1.Load(ctx, rig.LoadSpec{URL: slow.URL("/"), N: 3, Concurrency: 3, Timeout: 10 * time.Second, IncludeBody: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("with timeout 1s: %s", res.Summary())
		if len(res.Records) != 3 {
			t.Fatalf("%d records, want 3", len(res.Records))
		}
		for _, rec := range res.Records {
			lat := time.Duration(rec.LatencyMs * float64(time.Millisecond))
			if rec.Status != 504 || lat < 900*time.Millisecond || lat > 2*time.Second {
				t.Errorf("request %d: %d after %s (%q), want 504 in 0.9-2s", rec.Seq, rec.Status, lat.Round(time.Millisecond), rec.Body)
			}
		}
	})

	t.Run("retries: a backend failing its first 2 requests answers 200 after 3 attempts", func(t *testing.T) {
		// Port 80 retries 5xx 3 times; port 81 (same pod, its own FailFirst count)
		// does not retry, to show the failures are real.
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: default}
spec:
  hosts: [flaky]
  http:
  - name: flaky-no-retry
    match: [{port: 81}]
    retries: {attempts: 0}
    route: [{destination: {host: flaky}}]
  - name: flaky-retry
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: flaky}}]
`)
		waitForRouteNamed(t, ctx, sleepV1.Envoy, "80", "flaky-retry", true)
		waitForRouteNamed(t, ctx, sleepV1.Envoy, "81", "flaky-no-retry", true)
		syncedAll(t, ctx, sleepV1)
		retries := func(port int) int64 {
			s, err := sleepV1.Envoy.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return s[fmt.Sprintf("cluster.outbound|%d||%s.upstream_rq_retry", port, flaky.Hostname)]
		}

		status, r, err := sleepV1.Echo(ctx, "GET", flaky.URL("/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("GET flaky:80 with retries: %d, backend request #%d, client sidecar retried %d times", status, r.Request, retries(80))
		if status != 200 || r.Pod != "flaky" || r.Request != 3 {
			t.Errorf("GET flaky:80: %d from %q as its request #%d, want 200 on the backend's 3rd request", status, r.Pod, r.Request)
		}
		if n := retries(80); n != 2 {
			t.Errorf("upstream_rq_retry of flaky:80 = %d, want 2", n)
		}

		var got []string
		for i := 1; i <= 3; i++ {
			status, r, err := sleepV1.Echo(ctx, "GET", flaky.URL("/", 81), nil)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d(#%d)", status, r.Request))
			want := 503
			if i == 3 {
				want = 200
			}
			if status != want || r.Request != int64(i) {
				t.Errorf("GET flaky:81 #%d without retries: %d as the backend's request #%d, want %d as #%d", i, status, r.Request, want, i)
			}
		}
		t.Logf("GET flaky:81 without retries, 3 times: %s", strings.Join(got, " "))
		if n := retries(81); n != 0 {
			t.Errorf("upstream_rq_retry of flaky:81 = %d, want 0", n)
		}
	})

	t.Run("ServiceEntry to an external host; ALLOW_ANY then REGISTRY_ONLY", func(t *testing.T) {
		ext2HTTP := "http://" + ext2.IP + ":80/unknown"  // the HTTP listener 0.0.0.0_80, by Host
		ext2TCP := "http://" + ext2.IP + ":8080/unknown" // no listener for 8080: virtualOutbound's catch-all
		passthrough := func() int64 {
			s, err := sleepV1.Envoy.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return s["cluster.PassthroughCluster.upstream_cx_total"]
		}

		// ALLOW_ANY (the default): a host the mesh does not know is reached
		// through PassthroughCluster, from the client pod's own address.
		before := passthrough()
		for _, u := range []string{ext2HTTP, ext2TCP} {
			status, r, err := sleepV1.Echo(ctx, "GET", u, nil)
			if err != nil || status != 200 || r.Pod != "ext-2" {
				t.Fatalf("ALLOW_ANY: GET %s: %d %v %+v", u, status, err, r)
			}
			if host, _, _ := net.SplitHostPort(r.RemoteAddr); host != sleepV1.IP {
				t.Errorf("ALLOW_ANY: ext-2 saw %s, want the client pod %s", r.RemoteAddr, sleepV1.IP)
			}
		}
		if n := passthrough() - before; n < 2 {
			t.Errorf("ALLOW_ANY: %d new PassthroughCluster connections, want 2", n)
		}

		const vip, seHost = "240.240.0.10", "echo.external.test"
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-echo, namespace: default}
spec:
  hosts: [`+seHost+`]
  addresses: [`+vip+`]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  endpoints:
  - address: `+ext1.IP+`
`)
		seCluster := "outbound|80||" + seHost
		waitForEndpoint(t, ctx, sleepV1.Envoy, seCluster, ext1.IP+":8080", true)
		syncedAll(t, ctx, sleepV1)
		seURL := "http://" + vip + "/hello"
		checkSE := func(when string) {
			t.Helper()
			for _, h := range []map[string]string{nil, {"Host": seHost}} {
				status, r, err := sleepV1.Echo(ctx, "GET", seURL, h)
				if err != nil || status != 200 || r.Pod != "ext-1" || r.Path != "/hello" {
					t.Fatalf("%s: GET %s (headers %v): %d %v %+v", when, seURL, h, status, err, r)
				}
				if host, _, _ := net.SplitHostPort(r.RemoteAddr); host != sleepV1.IP {
					t.Errorf("%s: ext-1 saw %s, want the client pod %s", when, r.RemoteAddr, sleepV1.IP)
				}
			}
		}
		checkSE("ServiceEntry, ALLOW_ANY")
		stats, err := sleepV1.Envoy.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := stats["cluster."+seCluster+".upstream_rq_completed"]; n < 2 {
			t.Errorf("%s completed %d requests, want ≥ 2", seCluster, n)
		}

		m.SetMeshConfig(t, "outboundTrafficPolicy: {mode: REGISTRY_ONLY}")
		restored := false
		t.Cleanup(func() { // when the subtest stops early, for the next ones
			if !restored {
				m.SetMeshConfig(t, "outboundTrafficPolicy: {mode: ALLOW_ANY}")
			}
		})
		waitForVirtualHost(t, ctx, sleepV1.Envoy, "80", "block_all", true)
		waitForOutboundFallback(t, ctx, sleepV1.Envoy, "BlackHoleCluster")
		syncedAll(t, ctx, sleepV1)

		checkSE("ServiceEntry, REGISTRY_ONLY")
		res, err := sleepV1.Load(ctx, rig.LoadSpec{URL: ext2HTTP, N: 1, Timeout: 5 * time.Second, IncludeBody: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("REGISTRY_ONLY, unknown host over HTTP port 80: %s", res.Summary())
		if len(res.Records) != 1 || res.Records[0].Status != 502 || res.Records[0].Pod != "" {
			t.Errorf("REGISTRY_ONLY: GET %s: %+v, want 502 from the sidecar", ext2HTTP, res.Records)
		}
		res, err = sleepV1.Load(ctx, rig.LoadSpec{URL: ext2TCP, N: 1, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("REGISTRY_ONLY, unknown host on port 8080 (TCP catch-all): %s %v", res.Summary(), res.Errors(1))
		if len(res.Records) != 1 || res.Records[0].Status != 0 || res.Records[0].Error == "" {
			t.Errorf("REGISTRY_ONLY: GET %s: %+v, want the connection closed (BlackHoleCluster)", ext2TCP, res.Records)
		}
		// Services of the mesh are still reachable, of course.
		if status, r, err := sleepV1.Echo(ctx, "GET", appsV1.URL("/"), nil); err != nil || status != 200 || r.Pod != "apps-v1" {
			t.Errorf("REGISTRY_ONLY: GET apps-v1: %d %v", status, err)
		}

		m.SetMeshConfig(t, "outboundTrafficPolicy: {mode: ALLOW_ANY}")
		restored = true
		waitForVirtualHost(t, ctx, sleepV1.Envoy, "80", "allow_any", true)
		waitForOutboundFallback(t, ctx, sleepV1.Envoy, "PassthroughCluster")
		syncedAll(t, ctx, sleepV1)
		if status, r, err := sleepV1.Echo(ctx, "GET", ext2TCP, nil); err != nil || status != 200 || r.Pod != "ext-2" {
			t.Errorf("back to ALLOW_ANY: GET %s: %d %v", ext2TCP, status, err)
		}
	})

	t.Run("Sidecar egress scoping: the scoped proxy holds only its namespace's clusters", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec:
  egress:
  - hosts: ["./*", "istio-system/*"]
`)
		// prometheus_stats: the stats listener's cluster to the sidecar's admin.
		static := []string{"BlackHoleCluster", "InboundPassthroughCluster", "PassthroughCluster", "prometheus_stats"}
		var inScope, all []string
		for _, s := range m.Services() {
			for _, p := range s.Ports {
				c := fmt.Sprintf("outbound|%d||%s", p.Port, s.Hostname)
				all = append(all, c)
				if s.Namespace == "scoped" || s.Namespace == "istio-system" {
					inScope = append(inScope, c)
				}
			}
		}
		want := append(append([]string(nil), static...), inScope...)
		sort.Strings(want)
		var scoped []string
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		defer wcancel()
		if err := scopedClient.Envoy.WaitFor(wctx, func(ctx context.Context, e *rig.Envoy) error {
			names, err := e.ClusterNames(ctx)
			if err != nil {
				return err
			}
			scoped = names
			if strings.Join(names, " ") != strings.Join(want, " ") {
				return fmt.Errorf("scoped proxy's clusters %v, want %v", names, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		syncedAll(t, ctx, scopedClient)
		unscoped, err := sleepV1.Envoy.ClusterNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		has := map[string]bool{}
		for _, n := range unscoped {
			has[n] = true
		}
		for _, c := range append(all, static...) {
			if !has[c] {
				t.Errorf("unscoped proxy sleep-v1 (namespace default) lacks %s", c)
			}
		}
		t.Logf("clusters: scoped proxy %d %v; unscoped proxy %d (%d service ports of %d Services, subsets, a ServiceEntry, inbound)",
			len(scoped), scoped, len(unscoped), len(all), len(m.Services()))
		if len(unscoped) <= len(scoped) {
			t.Errorf("unscoped proxy has %d clusters, scoped %d", len(unscoped), len(scoped))
		}

		// Listeners and routes follow: no port-81 listener (only flaky in default
		// has that port), and the port-80 table names only in-scope services.
		listeners, err := scopedClient.Envoy.ListenerNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("scoped proxy's listeners: %v", listeners)
		for _, l := range listeners {
			if l == "0.0.0.0_81" {
				t.Errorf("scoped proxy has listener %s", l)
			}
		}
		dump, err := scopedClient.Envoy.ConfigDump(ctx)
		if err != nil {
			t.Fatal(err)
		}
		vhosts := virtualHostNames(dump.RouteConfigs()["80"])
		t.Logf("scoped proxy's route 80 virtual hosts: %v", vhosts)
		if strings.Join(vhosts, " ") != "local.scoped.svc.cluster.local:80 allow_any" {
			t.Errorf("scoped proxy's route 80 virtual hosts %v, want only local's and allow_any", vhosts)
		}

		// Traffic: the local service works; a service out of scope is just an
		// unknown address, passed through to a ClusterIP nothing answers on.
		if status, r, err := scopedClient.Echo(ctx, "GET", local.URL("/"), nil); err != nil || status != 200 || r.Pod != "local-v1" {
			t.Errorf("scoped client → local: %d %v", status, err)
		}
		res, err := scopedClient.Load(ctx, rig.LoadSpec{URL: apps.URL("/"), N: 1, Timeout: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("scoped client → apps (out of scope): %s %v", res.Summary(), res.Errors(1))
		if len(res.Records) != 1 || res.Records[0].Status == 200 {
			t.Errorf("scoped client reached apps, which is out of its scope: %+v", res.Records)
		}
	})

	t.Run("invalid config is skipped, named, counted, never NACKed; the valid rest flows", func(t *testing.T) {
		before, err := m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Two invalid VirtualServices for apps-v2 (were either applied, some of its
		// traffic would go to apps-v1), and one routing to a subset no
		// DestinationRule defines (a warning: applied, that route answers 503).
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad-regex, namespace: default}
spec:
  hosts: [apps-v2]
  http:
  - name: bad-regex
    match: [{uri: {regex: "/(unclosed"}}]
    route: [{destination: {host: apps-v1}}]
  - route: [{destination: {host: apps-v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad-weights, namespace: default}
spec:
  hosts: [apps-v2]
  http:
  - name: bad-weights
    route:
    - destination: {host: apps-v1}
      weight: 60
    - destination: {host: apps-v2}
      weight: 30
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: missing-subset, namespace: default}
spec:
  hosts: [apps-nosubset]
  http:
  - name: missing-subset
    route: [{destination: {host: apps-nosubset, subset: v3}}]
`)
		// A valid change made after them must still flow.
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: apps, namespace: default}
spec:
  hosts: [apps]
  http:
  - name: all-v1
    route: [{destination: {host: apps, subset: v1}}]
`)
		waitForRouteNamed(t, ctx, sleepV1.Envoy, "80", "all-v1", true)
		waitForRouteNamed(t, ctx, sleepV1.Envoy, "80", "missing-subset", true)
		syncedAll(t, ctx, sleepV1)
		dump, err := sleepV1.Envoy.ConfigDump(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if js, _ := json.Marshal(dump.RouteConfigs()["80"]); strings.Contains(string(js), "bad-regex") || strings.Contains(string(js), "bad-weights") {
			t.Errorf("an invalid VirtualService reached the sidecar: %s", js)
		}

		for _, c := range []struct {
			svc  *rig.Service
			want string
		}{{apps, "v1"}, {appsV2, "v2"}} {
			res, err := sleepV1.Load(ctx, rig.LoadSpec{URL: c.svc.URL("/"), N: 100, Concurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s", c.svc.Name, res.Summary())
			if got := res.VersionCounts()[c.want]; got != 100 {
				t.Errorf("%s: %s, want all 100 from %s", c.svc.Name, res.Summary(), c.want)
			}
		}
		status, _, body, err := sleepV1.HTTP(ctx, "GET", noSubset.URL("/"), nil)
		t.Logf("apps-nosubset (route to undefined subset v3): %d %q", status, body)
		if err != nil || status != 503 {
			t.Errorf("apps-nosubset: %d %v, want 503 (no such cluster)", status, err)
		}

		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		var after rig.Metrics
		if err := rig.Eventually(wctx, 50*time.Millisecond, func(ctx context.Context) error {
			after, err = m.Mizzen.Metrics(ctx)
			if err != nil {
				return err
			}
			for _, code := range []string{"InvalidRegex", "WeightsNotSum100", "ReferencedSubsetNotFound"} {
				k := fmt.Sprintf(`mizzen_config_errors_total{code="%s",kind="VirtualService"}`, code)
				if after[k] <= before[k] {
					return fmt.Errorf("%s = %v (before %v)", k, after[k], before[k])
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("mizzen_config_errors_total: %v → %v", before.Sum("mizzen_config_errors_total"), after.Sum("mizzen_config_errors_total"))
		log := m.Mizzen.Log()
		for _, want := range [][]string{
			{"bad-regex", "spec.http[0].match[0].uri.regex", "InvalidRegex"},
			{"bad-weights", "spec.http[0].route[*].weight", "WeightsNotSum100"},
			{"missing-subset", "spec.http[0].route[0].destination.subset", "ReferencedSubsetNotFound"},
		} {
			line := logLine(log, want[0], want[2])
			if line == "" || !strings.Contains(line, want[1]) {
				t.Errorf("mizzen's log has no line naming %s and %s (%s); got %q", want[0], want[1], want[2], line)
			} else {
				t.Logf("log: %s", line)
			}
		}
	})

	t.Run("no config was rejected", func(t *testing.T) {
		for _, w := range sidecars {
			stats, err := w.Envoy.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range stats {
				if strings.HasSuffix(k, ".update_rejected") && v != 0 {
					t.Errorf("%s: %s = %d", w.Name, k, v)
				}
			}
		}
		mt, err := m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := mt.Sum("pilot_total_xds_rejects"); v != 0 {
			t.Errorf("pilot_total_xds_rejects = %v", v)
		}
	})
	t.Logf("TestMeshTrafficManagement took %s", time.Since(began).Round(time.Millisecond))
}

const appsDestinationRule = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: apps, namespace: default}
spec:
  host: apps
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

// waitForRouteNamed waits until the route table has (or lacks) a route of that
// name; VirtualService http routes carry their `name`.
func waitForRouteNamed(t *testing.T, ctx context.Context, e *rig.Envoy, table, route string, present bool) {
	t.Helper()
	waitForRouteTable(t, ctx, e, table, func(rc map[string]any) error {
		var has bool
		for _, vh := range asList(rc["virtual_hosts"]) {
			for _, r := range asList(asMap(vh)["routes"]) {
				if asMap(r)["name"] == route {
					has = true
				}
			}
		}
		if has != present {
			return fmt.Errorf("route table %s: route %q present=%v", table, route, has)
		}
		return nil
	})
}

// waitForVirtualHost waits until the route table has (or lacks) a virtual host.
func waitForVirtualHost(t *testing.T, ctx context.Context, e *rig.Envoy, table, vhost string, present bool) {
	t.Helper()
	waitForRouteTable(t, ctx, e, table, func(rc map[string]any) error {
		has := false
		for _, n := range virtualHostNames(rc) {
			has = has || n == vhost
		}
		if has != present {
			return fmt.Errorf("route table %s: virtual host %q present=%v (%v)", table, vhost, has, virtualHostNames(rc))
		}
		return nil
	})
}

func waitForRouteTable(t *testing.T, ctx context.Context, e *rig.Envoy, table string, cond func(rc map[string]any) error) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.WaitFor(wctx, func(ctx context.Context, e *rig.Envoy) error {
		raw, err := e.ConfigDumpRaw(ctx, false)
		if err != nil {
			return err
		}
		dump, err := rig.ParseConfigDump(raw)
		if err != nil {
			return err
		}
		rc, ok := dump.RouteConfigs()[table]
		if !ok {
			return fmt.Errorf("no route table %q", table)
		}
		return cond(rc)
	}); err != nil {
		t.Fatal(err)
	}
}

// waitForOutboundFallback waits until virtualOutbound's catch-all sends to cluster.
func waitForOutboundFallback(t *testing.T, ctx context.Context, e *rig.Envoy, cluster string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.WaitFor(wctx, func(ctx context.Context, e *rig.Envoy) error {
		dump, err := e.ConfigDump(ctx)
		if err != nil {
			return err
		}
		js, _ := json.Marshal(dump.ActiveListeners()["virtualOutbound"])
		if !strings.Contains(string(js), `"cluster":"`+cluster+`"`) {
			return fmt.Errorf("virtualOutbound does not send to %s: %s", cluster, js)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func virtualHostNames(rc map[string]any) []string {
	var out []string
	for _, vh := range asList(rc["virtual_hosts"]) {
		if n, _ := asMap(vh)["name"].(string); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func asList(v any) []any         { l, _ := v.([]any); return l }
func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

// logLine returns the first line of log holding all the given strings.
func logLine(log string, parts ...string) string {
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return line
		}
	}
	return ""
}
