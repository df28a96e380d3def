package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// The mesh rig's acceptance: real Envoy sidecars behind istio-init-style capture
// in pods (network namespaces) written to a real apiserver, mizzen in Kubernetes
// mode, and apps calling Services by ClusterIP from inside their pods — the
// tutorial's canary (apps-svc-v1/apps-svc-v2 behind apps-svc-all), a header A/B
// test, and weight changes under load.
func TestMeshSidecars(t *testing.T) {
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	http80 := []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}
	svcV1 := m.AddService(t, rig.ServiceSpec{Name: "apps-svc-v1", Ports: http80, Selector: map[string]string{"version": "v1"}})
	svcV2 := m.AddService(t, rig.ServiceSpec{Name: "apps-svc-v2", Ports: http80, Selector: map[string]string{"version": "v2"}})
	svcAll := m.AddService(t, rig.ServiceSpec{Name: "apps-svc-all", Ports: http80, Selector: map[string]string{"app": "apps"}})

	appsV1 := m.AddWorkload(t, rig.WorkloadSpec{Name: "apps-v1", IP: "198.18.2.1", ServiceAccount: "apps",
		Labels: map[string]string{"app": "apps", "version": "v1"}, App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
	appsV2 := m.AddWorkload(t, rig.WorkloadSpec{Name: "apps-v2", IP: "198.18.2.2", ServiceAccount: "apps",
		Labels: map[string]string{"app": "apps", "version": "v2"}, App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "client", IP: "198.18.2.10", ServiceAccount: "client",
		Labels: map[string]string{"app": "client"}, Sidecar: true})
	legacy := m.AddWorkload(t, rig.WorkloadSpec{Name: "legacy", IP: "198.18.2.20",
		Labels: map[string]string{"app": "legacy"}, App: rig.AppSpec{Ports: []int{9090}}}) // no sidecar
	t.Logf("mesh up in %s", time.Since(began).Round(time.Millisecond))

	// The client's sidecar knows all three services and their endpoints.
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+svcV1.Hostname, appsV1.IP+":8080", true)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+svcV2.Hostname, appsV2.IP+":8080", true)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+svcAll.Hostname, appsV1.IP+":8080", true)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+svcAll.Hostname, appsV2.IP+":8080", true)

	t.Run("capture: traffic goes through both sidecars", func(t *testing.T) {
		for _, w := range []*rig.Workload{appsV1, client} {
			if n := strings.Count(w.CaptureRules, "-j REDIRECT"); n != 2 {
				t.Errorf("%s: %d REDIRECT rules, want 2:\n%s", w.Name, n, w.CaptureRules)
			}
			if uid, gid := procIDs(t, w.Envoy.Pid()); uid != "1337" || gid != "1337" {
				t.Errorf("%s: sidecar runs as uid %s gid %s, want 1337/1337", w.Name, uid, gid)
			}
		}
		status, r, err := client.Echo(ctx, "GET", svcV1.URL("/hello"), map[string]string{"x-from": "client"})
		if err != nil || status != 200 {
			t.Fatalf("GET apps-svc-v1 from the client pod: %d %v", status, err)
		}
		if r.Version != "v1" || r.Header("x-from") != "client" || r.Path != "/hello" {
			t.Errorf("answer %+v", r)
		}
		// The app sees the connection from its sidecar's inbound cluster (bound
		// to 127.0.0.6), and headers both Envoys add.
		if host, _, _ := net.SplitHostPort(r.RemoteAddr); host != "127.0.0.6" {
			t.Errorf("app saw the request from %q, want 127.0.0.6 (its own sidecar)", r.RemoteAddr)
		}
		for _, h := range []string{"x-request-id", "x-forwarded-proto"} {
			if r.Header(h) == "" {
				t.Errorf("app saw no %s header (not proxied?): %v", h, r.Headers)
			}
		}
		stat := func(e *rig.Envoy, name string) int64 {
			s, err := e.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return s[name]
		}
		if n := stat(client.Envoy, "http.outbound_0.0.0.0_80.downstream_rq_completed"); n < 1 {
			t.Errorf("client sidecar: outbound_0.0.0.0_80 completed %d requests", n)
		}
		if n := stat(appsV1.Envoy, "http.inbound_0.0.0.0_8080.downstream_rq_completed"); n < 1 {
			t.Errorf("apps-v1 sidecar: inbound_0.0.0.0_8080 completed %d requests", n)
		}

		// Without a sidecar there is no capture: a ClusterIP leads nowhere (no
		// kube-proxy in the rig) ...
		res, err := legacy.Load(ctx, rig.LoadSpec{URL: svcV1.URL("/"), N: 1, Timeout: time.Second, Duration: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != 1 || res.Records[0].Status != 0 {
			t.Errorf("pod without sidecar reached a ClusterIP: %+v", res.Records)
		}
		// ... but a call to a pod with a sidecar is still captured on its way in.
		status, r, err = legacy.Echo(ctx, "GET", "http://"+appsV1.IP+":8080/direct", nil)
		if err != nil || status != 200 {
			t.Fatalf("GET apps-v1 by pod IP from the legacy pod: %d %v", status, err)
		}
		if host, _, _ := net.SplitHostPort(r.RemoteAddr); host != "127.0.0.6" || r.Header("x-request-id") == "" {
			t.Errorf("direct call not through apps-v1's sidecar: remote %q headers %v", r.RemoteAddr, r.Headers)
		}

		// Outbound to a pod outside the mesh passes through the client's sidecar
		// (ALLOW_ANY): the legacy app sees the client pod's address.
		status, r, err = client.Echo(ctx, "GET", "http://"+legacy.IP+":9090/out", nil)
		if err != nil || status != 200 {
			t.Fatalf("GET legacy by pod IP from the client pod: %d %v", status, err)
		}
		if host, _, _ := net.SplitHostPort(r.RemoteAddr); host != client.IP {
			t.Errorf("legacy app saw the request from %q, want the client pod %s", r.RemoteAddr, client.IP)
		}
		if n := stat(client.Envoy, "cluster.PassthroughCluster.upstream_rq_completed") + stat(client.Envoy, "cluster.PassthroughCluster.upstream_cx_total"); n < 1 {
			t.Errorf("client sidecar: the call to the legacy pod did not go through PassthroughCluster")
		}

		// A pod calling its own Service: its sidecar's connection to its own
		// address is sent back into inbound capture (the uid 1337 + lo rule).
		status, r, err = appsV1.Echo(ctx, "GET", svcV1.URL("/self"), nil)
		if err != nil || status != 200 || r.Pod != "apps-v1" {
			t.Fatalf("GET apps-svc-v1 from apps-v1 itself: %d %v %+v", status, err, r)
		}
		if host, _, _ := net.SplitHostPort(r.RemoteAddr); host != "127.0.0.6" {
			t.Errorf("hairpin call reached the app from %q, want 127.0.0.6", r.RemoteAddr)
		}
	})

	t.Run("canary 90/10 across two services", func(t *testing.T) {
		m.API.Apply(t, canaryVS(90, 10))
		waitForRoute(t, ctx, client.Envoy, "80", "outbound|80||"+svcV2.Hostname, true)
		syncedAll(t, ctx, client)
		res, err := client.Load(ctx, rig.LoadSpec{URL: svcAll.URL("/"), N: 1000, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("canary: %s", res.Summary())
		if len(res.Records) != 1000 || res.Non2xx() != 0 {
			t.Fatalf("%d records, %d non-2xx (errors %v)", len(res.Records), res.Non2xx(), res.Errors(3))
		}
		if share := res.Share("v2"); share < 0.055 || share > 0.145 {
			t.Errorf("v2 share %.3f, want 0.10 ± 0.045 (4.7σ at N=1000)", share)
		}
	})

	t.Run("header A/B with DestinationRule subsets", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: apps, namespace: default}
spec:
  host: apps-svc-all
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: apps, namespace: default}
spec:
  hosts: [apps-svc-all]
  http:
  - match:
    - headers:
        username: {exact: nolen}
    route:
    - destination: {host: apps-svc-all, subset: v1}
  - route:
    - destination: {host: apps-svc-all, subset: v2}
`)
		waitForRoute(t, ctx, client.Envoy, "80", "outbound|80|v1|"+svcAll.Hostname, true)
		waitForEndpoint(t, ctx, client.Envoy, "outbound|80|v1|"+svcAll.Hostname, appsV1.IP+":8080", true)
		waitForEndpoint(t, ctx, client.Envoy, "outbound|80|v2|"+svcAll.Hostname, appsV2.IP+":8080", true)
		syncedAll(t, ctx, client)
		for _, c := range []struct {
			headers map[string]string
			want    string
		}{
			{map[string]string{"username": "nolen"}, "v1"},
			{map[string]string{"username": "someone"}, "v2"},
			{nil, "v2"},
		} {
			res, err := client.Load(ctx, rig.LoadSpec{URL: svcAll.URL("/"), Headers: c.headers, N: 100, Concurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.VersionCounts()[c.want]; got != 100 {
				t.Errorf("headers %v: %s, want all 100 from %s", c.headers, res.Summary(), c.want)
			}
		}
	})

	t.Run("100 weight changes under load: 0 non-2xx", func(t *testing.T) {
		m.API.Apply(t, canaryVS(50, 50))
		waitForRoute(t, ctx, client.Envoy, "80", "outbound|80||"+svcV2.Hostname, true)
		syncedAll(t, ctx, client)
		run, err := client.StartLoad(ctx, rig.LoadSpec{URL: svcAll.URL("/"), N: 500000, Concurrency: 2, Duration: 90 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer run.Stop()
		time.Sleep(200 * time.Millisecond)
		var slow int
		start := time.Now()
		for i := 0; i < 100; i++ {
			ps, err := m.Mizzen.ProxySync(ctx, client.ProxyID)
			if err != nil {
				t.Fatal(err)
			}
			v1 := (i * 37) % 101
			m.API.Apply(t, canaryVS(v1, 100-v1))
			wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
			if err := m.WaitSyncedPast(wctx, client.ProxyID, "rds", ps.Types["rds"].Acked); err != nil {
				slow++
				t.Logf("change %d: %v", i, err)
			}
			wcancel()
		}
		changes := time.Since(start)
		time.Sleep(200 * time.Millisecond)
		run.Stop()
		res, err := run.Wait()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("100 changes in %s (%d not seen SYNCED within 3s); load: %s", changes.Round(time.Millisecond), slow, res.Summary())
		if len(res.Records) < 1000 {
			t.Errorf("only %d requests during the changes", len(res.Records))
		}
		if n := res.Non2xx(); n != 0 {
			t.Errorf("%d of %d requests were not 2xx: status %v, errors %v", n, len(res.Records), res.StatusCounts(), res.Errors(5))
		}
		if slow > 0 {
			t.Errorf("%d changes did not reach the client sidecar within 3s", slow)
		}
	})

	t.Run("no config was rejected", func(t *testing.T) {
		for _, w := range []*rig.Workload{appsV1, appsV2, client} {
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
	t.Logf("TestMeshSidecars took %s", time.Since(began).Round(time.Millisecond))
}

// canaryVS routes apps-svc-all to the two per-version Services by weight.
func canaryVS(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: apps, namespace: default}
spec:
  hosts: [apps-svc-all]
  http:
  - route:
    - destination: {host: apps-svc-v1}
      weight: %d
    - destination: {host: apps-svc-v2}
      weight: %d
`, v1, v2)
}

// syncedAll waits until mizzen shows the workload's sidecar SYNCED for every type.
func syncedAll(t *testing.T, ctx context.Context, w *rig.Workload) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.WaitSynced(wctx, "cds", "eds", "lds", "rds"); err != nil {
		t.Fatal(err)
	}
}

// procIDs returns the real uid and gid of a process (from /proc/<pid>/status).
func procIDs(t *testing.T, pid int) (uid, gid string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "Uid:" {
			uid = f[1]
		}
		if len(f) >= 2 && f[0] == "Gid:" {
			gid = f[1]
		}
	}
	return uid, gid
}
