package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// Issue 4's remaining acceptance through real sidecars, on one mesh: fault
// injection (abort 50%, fixed delay), mirroring, circuit breaking, outlier
// detection, weighted TCP routes, TLS passthrough routed by SNI, and gRPC
// through HTTP/2 clusters with header and path matches. Subtests run in order
// on the shared mesh; each writes its own VirtualService/DestinationRule.
//
//	client    198.18.6.10  no app: every request starts here
//	faults    198.18.6.1   HTTP 8080                       Service faults :80
//	cb        198.18.6.2   HTTP 8080, every answer 300 ms   Service cb :80
//	od-good   198.18.6.3   HTTP 8080                       Service od :80 (both)
//	od-bad    198.18.6.4   HTTP 8080, 503 to every request
//	echo-v1   198.18.6.5   HTTP 8080, HTTPS 8443 (certificate a.example), TCP echo 9000, gRPC 7070
//	echo-v2   198.18.6.6   the same, certificate b.example
//	          Services (app=echo): mirror :80 (http), tcp-echo :9000 (tcp-echo),
//	          tls-echo :443 → 8443 (tls), grpc-echo :7070 (grpc); a DestinationRule
//	          with subsets v1, v2 for each
func TestMeshResilience(t *testing.T) {
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	http80 := []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}
	echoSel := map[string]string{"app": "echo"}
	faults := m.AddService(t, rig.ServiceSpec{Name: "faults", Ports: http80, Selector: map[string]string{"app": "faults"}})
	cb := m.AddService(t, rig.ServiceSpec{Name: "cb", Ports: http80, Selector: map[string]string{"app": "cb"}})
	od := m.AddService(t, rig.ServiceSpec{Name: "od", Ports: http80, Selector: map[string]string{"app": "od"}})
	mirror := m.AddService(t, rig.ServiceSpec{Name: "mirror", Ports: http80, Selector: echoSel})
	tcpEcho := m.AddService(t, rig.ServiceSpec{Name: "tcp-echo", Ports: []rig.ServicePort{{Name: "tcp-echo", Port: 9000}}, Selector: echoSel})
	tlsEcho := m.AddService(t, rig.ServiceSpec{Name: "tls-echo", Ports: []rig.ServicePort{{Name: "tls", Port: 443, TargetPort: 8443}}, Selector: echoSel})
	grpcEcho := m.AddService(t, rig.ServiceSpec{Name: "grpc-echo", Ports: []rig.ServicePort{{Name: "grpc", Port: 7070}}, Selector: echoSel})

	sidecar := func(name, ip string, labels map[string]string, app rig.AppSpec) *rig.Workload {
		return m.AddWorkload(t, rig.WorkloadSpec{Name: name, IP: ip, Labels: labels, App: app, Sidecar: true})
	}
	app8080 := rig.AppSpec{Ports: []int{8080}}
	faultsPod := sidecar("faults", "198.18.6.1", map[string]string{"app": "faults"}, app8080)
	cbPod := sidecar("cb", "198.18.6.2", map[string]string{"app": "cb"}, rig.AppSpec{Ports: []int{8080}, Delay: 300 * time.Millisecond})
	odGood := sidecar("od-good", "198.18.6.3", map[string]string{"app": "od", "health": "good"}, app8080)
	odBad := sidecar("od-bad", "198.18.6.4", map[string]string{"app": "od", "health": "bad"}, rig.AppSpec{Ports: []int{8080}, FailFirst: 1 << 30})
	echoApp := func(cert string) rig.AppSpec {
		return rig.AppSpec{Ports: []int{8080}, TLSPorts: []int{8443}, TLSNames: []string{cert}, TCPPorts: []int{9000}, GRPCPorts: []int{7070}}
	}
	echoV1 := sidecar("echo-v1", "198.18.6.5", map[string]string{"app": "echo", "version": "v1"}, echoApp("a.example"))
	echoV2 := sidecar("echo-v2", "198.18.6.6", map[string]string{"app": "echo", "version": "v2"}, echoApp("b.example"))
	client := sidecar("client", "198.18.6.10", map[string]string{"app": "client"}, rig.AppSpec{})
	sidecars := []*rig.Workload{faultsPod, cbPod, odGood, odBad, echoV1, echoV2, client}
	t.Logf("mesh up in %s", time.Since(began).Round(time.Millisecond))

	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+faults.Hostname, faultsPod.IP+":8080", true)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+cb.Hostname, cbPod.IP+":8080", true)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+od.Hostname, odBad.IP+":8080", true)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+od.Hostname, odGood.IP+":8080", true)
	for _, s := range []*rig.Service{mirror, tcpEcho, tlsEcho, grpcEcho} {
		for _, w := range []*rig.Workload{echoV1, echoV2} {
			waitForEndpoint(t, ctx, client.Envoy, fmt.Sprintf("outbound|%d||%s", s.Ports[0].Port, s.Hostname),
				fmt.Sprintf("%s:%d", w.IP, s.Ports[0].TargetPort), true)
		}
	}
	m.API.Apply(t, subsetsDR("mirror")+"---\n"+subsetsDR("tcp-echo")+"---\n"+subsetsDR("tls-echo")+"---\n"+subsetsDR("grpc-echo"))

	t.Run("fault: abort 50% with 503, fixed delay 500ms at 100%", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: faults, namespace: default}
spec:
  hosts: [faults]
  http:
  - name: delay-500ms
    match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 500ms, percentage: {value: 100}}}
    route: [{destination: {host: faults}}]
  - name: abort-half
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    route: [{destination: {host: faults}}]
`)
		waitForRouteNamed(t, ctx, client.Envoy, "80", "abort-half", true)
		syncedAll(t, ctx, client)
		stat := func(name string) int64 {
			s, err := client.Envoy.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return s["http.outbound_0.0.0.0_80.fault."+name]
		}
		abortsBefore, delaysBefore := stat("aborts_injected"), stat("delays_injected")

		res, err := client.Load(ctx, rig.LoadSpec{URL: faults.URL("/"), N: 1000, Concurrency: 8})
		if err != nil {
			t.Fatal(err)
		}
		st := res.StatusCounts()
		aborts := stat("aborts_injected") - abortsBefore
		t.Logf("abort 50%%: %s; the client sidecar injected %d aborts", res.Summary(), aborts)
		if len(res.Records) != 1000 || st[200]+st[503] != 1000 {
			t.Fatalf("%d records, status %v (errors %v), want 1000 answered 200 or 503", len(res.Records), st, res.Errors(3))
		}
		if share := float64(st[503]) / 1000; share < 0.43 || share > 0.57 {
			t.Errorf("503 share %.3f, want 0.50 ± 0.07 (4.4σ at N=1000)", share)
		}
		if aborts != int64(st[503]) {
			t.Errorf("the client sidecar injected %d aborts, the client saw %d 503s", aborts, st[503])
		}
		for _, rec := range res.Records {
			if (rec.Status == 503) != (rec.Pod == "") || (rec.Status == 200 && rec.Pod != "faults") {
				t.Fatalf("record %+v: a 503 must come from the sidecar, a 200 from the backend", rec)
			}
		}

		res, err = client.Load(ctx, rig.LoadSpec{URL: faults.URL("/delay"), N: 40, Concurrency: 8, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		delays := stat("delays_injected") - delaysBefore
		t.Logf("delay 500ms: %s, min %s; the client sidecar delayed %d requests", res.Summary(), res.Latency(0).Round(10*time.Microsecond), delays)
		if len(res.Records) != 40 || res.VersionCounts()["v1"] != 40 {
			t.Fatalf("delay: %s, want 40 answers 200 from the backend", res.Summary())
		}
		// Envoy arms the delay timer on its event loop's cached, coarse monotonic
		// clock (libevent's), so the timer may fire a few ms early: runs here saw
		// answers after 498.7-499.4 ms. Allow 10 ms for that, no more.
		early := 0
		for _, rec := range res.Records {
			lat := time.Duration(rec.LatencyMs * float64(time.Millisecond))
			if lat < 500*time.Millisecond {
				early++
			}
			if lat < 490*time.Millisecond {
				t.Errorf("request %d answered after %s, before the 500ms delay (less Envoy's 10 ms timer slack)", rec.Seq, lat)
			}
		}
		if early > 0 {
			t.Logf("delay 500ms: %d of 40 answers came after 490-500 ms (Envoy's cached timer clock)", early)
		}
		if delays != 40 {
			t.Errorf("the client sidecar delayed %d requests, want 40", delays)
		}
	})

	t.Run("mirror: v2 receives the copies, the client sees only v1", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mirror, namespace: default}
spec:
  hosts: [mirror]
  http:
  - name: v1-mirrored-to-v2
    route: [{destination: {host: mirror, subset: v1}}]
    mirror: {host: mirror, subset: v2}
    mirrorPercentage: {value: 100}
`)
		waitForRouteNamed(t, ctx, client.Envoy, "80", "v1-mirrored-to-v2", true)
		waitForEndpoint(t, ctx, client.Envoy, "outbound|80|v2|"+mirror.Hostname, echoV2.IP+":8080", true)
		syncedAll(t, ctx, client)
		v2Direct := "http://" + echoV2.IP + ":8080/count" // the pod's own address, past any route
		counter := func() int64 {
			status, r, err := client.Echo(ctx, "GET", v2Direct, nil)
			if err != nil || status != 200 || r.Pod != "echo-v2" {
				t.Fatalf("GET %s: %d %v %+v", v2Direct, status, err, r)
			}
			return r.Request
		}
		shadowStat := func() int64 {
			s, err := client.Envoy.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return s["cluster.outbound|80|v2|"+mirror.Hostname+".upstream_rq_completed"]
		}
		before, shadowBefore := counter(), shadowStat()

		const n = 100
		res, err := client.Load(ctx, rig.LoadSpec{URL: mirror.URL("/mirrored"), N: n, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("client: %s", res.Summary())
		if got := res.VersionCounts(); got["v1"] != n || len(got) != 1 {
			t.Errorf("client saw %v, want all %d answers from v1", got, n)
		}
		// The copies are fire-and-forget: wait until the client sidecar has all
		// their answers, then ask v2 how many requests it got meanwhile.
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		if err := rig.Eventually(wctx, 50*time.Millisecond, func(context.Context) error {
			if got := shadowStat() - shadowBefore; got != n {
				return fmt.Errorf("%d mirrored requests completed, want %d", got, n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		after := counter()
		t.Logf("echo-v2's request counter %d → %d: %d mirrored copies (+1 direct request)", before, after, after-before-1)
		if after-before-1 != n {
			t.Errorf("v2 got %d requests between the two direct ones, want the %d copies", after-before-1, n)
		}
	})

	t.Run("circuit breaking: maxConnections 1, http1MaxPendingRequests 1, 20 concurrent clients", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cb, namespace: default}
spec:
  host: cb
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
`)
		cluster := "outbound|80||" + cb.Hostname
		waitForCluster(t, ctx, client.Envoy, cluster, `"max_pending_requests":1`)
		syncedAll(t, ctx, client)
		before, err := client.Envoy.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Load(ctx, rig.LoadSpec{URL: cb.URL("/"), N: 60, Concurrency: 20, IncludeHeaders: true, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		after, err := client.Envoy.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st := res.StatusCounts()
		overloaded := 0
		for _, rec := range res.Records {
			if rec.Status == 503 && rec.Headers.Get("x-envoy-overloaded") == "true" {
				overloaded++
			}
		}
		delta := func(stat string) int64 {
			return after["cluster."+cluster+"."+stat] - before["cluster."+cluster+"."+stat]
		}
		overflow, cx, cxOverflow := delta("upstream_rq_pending_overflow"), delta("upstream_cx_total"), delta("upstream_cx_overflow")
		t.Logf("20 concurrent clients: %s; %d answers 503 with x-envoy-overloaded: true; pending overflow %d; %d upstream connections (connection limit hit %d times)",
			res.Summary(), overloaded, overflow, cx, cxOverflow)
		if len(res.Records) != 60 || st[200]+st[503] != 60 {
			t.Fatalf("%d records, status %v (errors %v), want 60 answered 200 or 503", len(res.Records), st, res.Errors(3))
		}
		if overloaded == 0 || overloaded != st[503] {
			t.Errorf("%d of %d 503s carry x-envoy-overloaded: true, want some, and all of them", overloaded, st[503])
		}
		if st[200] == 0 {
			t.Errorf("no request got through the circuit breaker")
		}
		if overflow != int64(st[503]) {
			t.Errorf("upstream_rq_pending_overflow grew by %d, the client saw %d 503s", overflow, st[503])
		}
		// Envoy gives a host chosen by the load balancer one connection per
		// connection pool even past max_connections (each worker thread has its
		// own pool), bounded by max_connections + endpoints × pools: 1 + 1×2 here.
		if cx > 3 {
			t.Errorf("the client sidecar opened %d connections to cb; maxConnections 1 with 2 worker pools allows 3 at most", cx)
		}
	})

	t.Run("outlier detection: the failing endpoint is ejected, traffic moves to the healthy one", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od, namespace: default}
spec:
  host: od
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: od, namespace: default}
spec:
  hosts: [od]
  http:
  - name: od-no-retries
    retries: {attempts: 0}
    route: [{destination: {host: od}}]
`)
		cluster := "outbound|80||" + od.Hostname
		waitForCluster(t, ctx, client.Envoy, cluster, `"consecutive_5xx":1`)
		waitForRouteNamed(t, ctx, client.Envoy, "80", "od-no-retries", true)
		syncedAll(t, ctx, client)
		stats := func() map[string]int64 {
			s, err := client.Envoy.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		ejected := func() int64 { return stats()["cluster."+cluster+".outlier_detection.ejections_enforced_total"] }
		if n := ejected(); n != 0 {
			t.Fatalf("ejections_enforced_total %d before any traffic", n)
		}

		// Until od-bad is ejected, about every other request reaches it and fails;
		// its first 503 ejects it (bounded: at most 50 requests).
		var warm []string
		for i := 0; i < 50 && ejected() == 0; i++ {
			res, err := client.Load(ctx, rig.LoadSpec{URL: od.URL("/"), N: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range res.Records {
				warm = append(warm, fmt.Sprintf("%d(%s)", rec.Status, rec.Pod))
			}
		}
		s := stats()
		t.Logf("before the ejection: %s; ejections_enforced_total %d, ejections_active %d, consecutive_5xx ejections %d",
			strings.Join(warm, " "), s["cluster."+cluster+".outlier_detection.ejections_enforced_total"],
			s["cluster."+cluster+".outlier_detection.ejections_active"],
			s["cluster."+cluster+".outlier_detection.ejections_enforced_consecutive_5xx"])
		if s["cluster."+cluster+".outlier_detection.ejections_enforced_total"] == 0 {
			t.Fatalf("od-bad was not ejected after %d requests", len(warm))
		}
		if !strings.Contains(strings.Join(warm, " "), "503(od-bad)") {
			t.Errorf("no request reached od-bad before the ejection: %v", warm)
		}

		res, err := client.Load(ctx, rig.LoadSpec{URL: od.URL("/"), N: 100, Concurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after the ejection: %s", res.Summary())
		pods := map[string]int{}
		for _, rec := range res.Records {
			pods[rec.Pod]++
		}
		if len(res.Records) != 100 || res.StatusCounts()[200] != 100 || pods["od-good"] != 100 {
			t.Errorf("after the ejection: status %v, pods %v; want all 100 answered 200 by od-good", res.StatusCounts(), pods)
		}
		if n := stats()["cluster."+cluster+".outlier_detection.ejections_active"]; n != 1 {
			t.Errorf("ejections_active %d, want 1 (od-bad, ejected for 30s)", n)
		}
	})

	t.Run("TCP route: weighted 80/20 between two subsets", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{port: 9000}]
    route:
    - destination: {host: tcp-echo, subset: v1}
      weight: 80
    - destination: {host: tcp-echo, subset: v2}
      weight: 20
`)
		listener := tcpEcho.ClusterIP + "_9000"
		waitForListener(t, ctx, client.Envoy, listener, `"weighted_clusters"`)
		waitForEndpoint(t, ctx, client.Envoy, "outbound|9000|v2|"+tcpEcho.Hostname, echoV2.IP+":9000", true)
		syncedAll(t, ctx, client)
		res, err := client.Load(ctx, rig.LoadSpec{URL: "tcp://" + tcpEcho.ClusterIP + ":9000", N: 200, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("200 TCP connections: %s", res.Summary())
		if len(res.Records) != 200 || res.Non2xx() != 0 {
			t.Fatalf("%d connections, %d failed (%v)", len(res.Records), res.Non2xx(), res.Errors(3))
		}
		if share := res.Share("v2"); share < 0.08 || share > 0.32 {
			t.Errorf("v2 share %.3f, want 0.20 ± 0.12 (4.2σ at N=200)", share)
		}
		s, err := client.Envoy.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v1cx := s["cluster.outbound|9000|v1|"+tcpEcho.Hostname+".upstream_cx_total"]
		v2cx := s["cluster.outbound|9000|v2|"+tcpEcho.Hostname+".upstream_cx_total"]
		t.Logf("upstream connections: subset v1 %d, v2 %d", v1cx, v2cx)
		if c := res.VersionCounts(); v1cx != int64(c["v1"]) || v2cx != int64(c["v2"]) {
			t.Errorf("the sidecar's subset clusters opened %d/%d connections, the client saw %v", v1cx, v2cx, c)
		}
	})

	t.Run("TLS passthrough routed by SNI", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls-echo, namespace: default}
spec:
  hosts: [tls-echo, a.example, b.example]
  tls:
  - match: [{port: 443, sniHosts: [a.example]}]
    route: [{destination: {host: tls-echo, subset: v1}}]
  - match: [{port: 443, sniHosts: [b.example]}]
    route: [{destination: {host: tls-echo, subset: v2}}]
`)
		listener := tlsEcho.ClusterIP + "_443"
		waitForListener(t, ctx, client.Envoy, listener, `"server_names":["b.example"]`)
		syncedAll(t, ctx, client)
		url := "https://" + tlsEcho.ClusterIP + "/sni"
		for _, c := range []struct{ sni, pod, cert string }{{"a.example", "echo-v1", "a.example"}, {"b.example", "echo-v2", "b.example"}} {
			res, err := client.Load(ctx, rig.LoadSpec{URL: url, SNI: c.sni, N: 20, Concurrency: 2, IncludeBody: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("SNI %s: %s", c.sni, res.Summary())
			if len(res.Records) != 20 {
				t.Fatalf("SNI %s: %d records, want 20", c.sni, len(res.Records))
			}
			for _, rec := range res.Records {
				var r echo.Response
				_ = json.Unmarshal([]byte(rec.Body), &r)
				if rec.Status != 200 || rec.Pod != c.pod || rec.TLSPeer != c.cert || r.SNI != c.sni || r.Path != "/sni" {
					t.Fatalf("SNI %s: %d from %q (certificate %q, the server saw SNI %q, path %q) %s, want 200 from %s, certificate %s",
						c.sni, rec.Status, rec.Pod, rec.TLSPeer, r.SNI, r.Path, rec.Error, c.pod, c.cert)
				}
			}
		}
		// A name no rule matches has no filter chain: the sidecar closes the connection.
		res, err := client.Load(ctx, rig.LoadSpec{URL: url, SNI: "c.example", N: 1, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("SNI c.example (no rule): %s %v", res.Summary(), res.Errors(1))
		if len(res.Records) != 1 || res.Records[0].Status != 0 {
			t.Errorf("SNI c.example: %+v, want the connection closed", res.Records)
		}
	})

	t.Run("gRPC through HTTP/2 clusters, routed by header and path", func(t *testing.T) {
		target := "grpc://" + grpcEcho.ClusterIP + ":7070"
		// No VirtualService yet: both versions answer.
		res, err := client.Load(ctx, rig.LoadSpec{URL: target, N: 20, Concurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("gRPC health checks, no VirtualService: %s %v", res.Summary(), res.Errors(1))
		if c := res.VersionCounts(); len(res.Records) != 20 || c["v1"] == 0 || c["v2"] == 0 || c["v1"]+c["v2"] != 20 {
			t.Fatalf("gRPC without routing: %s %v, want 20 OK answers from both versions", res.Summary(), res.Errors(3))
		}

		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: grpc-echo, namespace: default}
spec:
  hosts: [grpc-echo]
  http:
  - name: grpc-header-v2
    match: [{headers: {x-version: {exact: v2}}}]
    route: [{destination: {host: grpc-echo, subset: v2}}]
  - name: grpc-health-v1
    match: [{uri: {prefix: /grpc.health.v1.Health/}}]
    route: [{destination: {host: grpc-echo, subset: v1}}]
`)
		waitForRouteNamed(t, ctx, client.Envoy, "7070", "grpc-health-v1", true)
		waitForEndpoint(t, ctx, client.Envoy, "outbound|7070|v1|"+grpcEcho.Hostname, echoV1.IP+":7070", true)
		waitForEndpoint(t, ctx, client.Envoy, "outbound|7070|v2|"+grpcEcho.Hostname, echoV2.IP+":7070", true)
		syncedAll(t, ctx, client)
		for _, c := range []struct {
			headers map[string]string
			want    string
		}{{nil, "v1"}, {map[string]string{"x-version": "v2"}, "v2"}, {map[string]string{"x-version": "v3"}, "v1"}} {
			res, err := client.Load(ctx, rig.LoadSpec{URL: target, N: 20, Concurrency: 2, Headers: c.headers})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("gRPC with headers %v: %s", c.headers, res.Summary())
			if got := res.VersionCounts()[c.want]; got != 20 {
				t.Errorf("gRPC with headers %v: %s %v, want all 20 from %s", c.headers, res.Summary(), res.Errors(3), c.want)
			}
		}
		s, err := client.Envoy.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, subset := range []string{"v1", "v2"} {
			c := fmt.Sprintf("cluster.outbound|7070|%s|%s.", subset, grpcEcho.Hostname)
			t.Logf("subset %s: %d HTTP/2 upstream connections, %d HTTP/1.1", subset, s[c+"upstream_cx_http2_total"], s[c+"upstream_cx_http1_total"])
			if s[c+"upstream_cx_http2_total"] == 0 || s[c+"upstream_cx_http1_total"] != 0 {
				t.Errorf("subset %s: the client sidecar did not speak HTTP/2 upstream", subset)
			}
		}
		for _, w := range []*rig.Workload{echoV1, echoV2} {
			ws, err := w.Envoy.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n := ws["cluster.inbound|7070||.upstream_cx_http2_total"]; n == 0 {
				t.Errorf("%s: the sidecar reached the gRPC app without HTTP/2", w.Name)
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
		if v := mt.Sum("mizzen_config_errors_total"); v != 0 {
			t.Errorf("mizzen_config_errors_total = %v: some config of this test was refused", v)
		}
	})
	t.Logf("TestMeshResilience took %s", time.Since(began).Round(time.Millisecond))
}

// subsetsDR is a DestinationRule with subsets v1 and v2 (label version) for host.
func subsetsDR(host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s, namespace: default}
spec:
  host: %s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`, host, host)
}

// waitForCluster waits until the dynamic active cluster's JSON holds want.
func waitForCluster(t *testing.T, ctx context.Context, e *rig.Envoy, name, want string) {
	t.Helper()
	waitForDump(t, ctx, e, func(d rig.ConfigDump) error {
		c, ok := d.DynamicActiveClusters()[name]
		if !ok {
			return fmt.Errorf("no active cluster %s", name)
		}
		if js, _ := json.Marshal(c); !strings.Contains(string(js), want) {
			return fmt.Errorf("cluster %s lacks %s: %s", name, want, js)
		}
		return nil
	})
}

// waitForListener waits until the active listener's JSON holds want.
func waitForListener(t *testing.T, ctx context.Context, e *rig.Envoy, name, want string) {
	t.Helper()
	waitForDump(t, ctx, e, func(d rig.ConfigDump) error {
		l, ok := d.ActiveListeners()[name]
		if !ok {
			return fmt.Errorf("no active listener %s", name)
		}
		if js, _ := json.Marshal(l); !strings.Contains(string(js), want) {
			return fmt.Errorf("listener %s lacks %s: %s", name, want, js)
		}
		return nil
	})
}

func waitForDump(t *testing.T, ctx context.Context, e *rig.Envoy, cond func(rig.ConfigDump) error) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.WaitFor(wctx, func(ctx context.Context, e *rig.Envoy) error {
		d, err := e.ConfigDump(ctx)
		if err != nil {
			return err
		}
		return cond(d)
	}); err != nil {
		t.Fatal(err)
	}
}
