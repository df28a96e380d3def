package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// Issue 15 point 3 through real sidecars: two zones of one region, as Nodes
// labelled topology.kubernetes.io/region/zone that the pods run on (the rig
// writes spec.nodeName and the EndpointSlices' nodeName); the client runs in
// zone-a, which mizzen learns from its pod's node.
//
//	node-a (region1/zone-a): od-a 198.18.10.1 (HTTP, 503 after its 20th request), dist-a 198.18.10.3, client 198.18.10.10
//	node-b (region1/zone-b): od-b 198.18.10.2, dist-b 198.18.10.4
//
// od has outlierDetection and no localityLbSetting: failover by default, as
// in istiod. dist has localityLbSetting.distribute from zone-a: 80 to zone-a,
// 20 to zone-b.
func TestMeshLocality(t *testing.T) {
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	m.API.Apply(t, `apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {topology.kubernetes.io/region: region1, topology.kubernetes.io/zone: zone-a}}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {topology.kubernetes.io/region: region1, topology.kubernetes.io/zone: zone-b}}
`)
	http80 := []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}
	od := m.AddService(t, rig.ServiceSpec{Name: "od", Ports: http80, Selector: map[string]string{"app": "od"}})
	dist := m.AddService(t, rig.ServiceSpec{Name: "dist", Ports: http80, Selector: map[string]string{"app": "dist"}})
	pod := func(name, ip, node, app string, spec rig.AppSpec) *rig.Workload {
		return m.AddWorkload(t, rig.WorkloadSpec{Name: name, IP: ip, NodeName: node, Labels: map[string]string{"app": app}, App: spec, Sidecar: true})
	}
	odA := pod("od-a", "198.18.10.1", "node-a", "od", rig.AppSpec{Ports: []int{8080}, FailAfter: 20})
	odB := pod("od-b", "198.18.10.2", "node-b", "od", rig.AppSpec{Ports: []int{8080}})
	distA := pod("dist-a", "198.18.10.3", "node-a", "dist", rig.AppSpec{Ports: []int{8080}})
	distB := pod("dist-b", "198.18.10.4", "node-b", "dist", rig.AppSpec{Ports: []int{8080}})
	client := pod("client", "198.18.10.10", "node-a", "client", rig.AppSpec{})
	t.Logf("mesh up in %s", time.Since(began).Round(time.Millisecond))

	m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od, namespace: default}
spec:
  host: od
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: od, namespace: default}
spec:
  hosts: [od]
  http: [{name: od-no-retries, retries: {attempts: 0}, route: [{destination: {host: od}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dist, namespace: default}
spec:
  host: dist
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: region1/zone-a/*
          to: {"region1/zone-a/*": 80, "region1/zone-b/*": 20}
`)
	// The client's Envoy holds od's endpoints in two priorities and dist's in
	// two weighted localities (/clusters shows what it load-balances on).
	waitForHosts(t, ctx, client.Envoy, map[string]string{
		"outbound|80||" + od.Hostname + "::" + odA.IP + ":8080::priority": "0",
		"outbound|80||" + od.Hostname + "::" + odB.IP + ":8080::priority": "1",
		"outbound|80||" + od.Hostname + "::" + odA.IP + ":8080::zone":     "zone-a",
		"outbound|80||" + dist.Hostname + "::" + distA.IP + ":8080::zone": "zone-a",
		"outbound|80||" + dist.Hostname + "::" + distB.IP + ":8080::zone": "zone-b",
	})
	waitForRouteNamed(t, ctx, client.Envoy, "80", "od-no-retries", true)
	syncedAll(t, ctx, client)

	t.Run("failover: zone-a until its endpoint is ejected, then zone-b", func(t *testing.T) {
		res, err := client.Load(ctx, rig.LoadSpec{URL: od.URL("/"), N: 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("od while zone-a is healthy: %s", res.Summary())
		for _, r := range res.Records {
			if r.Status != 200 || r.Pod != odA.Name {
				t.Fatalf("od while zone-a is healthy: %+v, want every request answered by %s (zone-a)", r, odA.Name)
			}
		}
		// od-a now answers 503: the first one ejects it (consecutive5xxErrors 1,
		// no retries) and the client fails over to zone-b.
		res, err = client.Load(ctx, rig.LoadSpec{URL: od.URL("/"), N: 100})
		if err != nil {
			t.Fatal(err)
		}
		ejected := envoyStat(t, ctx, client.Envoy, "cluster.outbound|80||"+od.Hostname+".outlier_detection.ejections_enforced_total")
		t.Logf("od after zone-a went bad: %s; ejections enforced %d", res.Summary(), ejected)
		if first := res.Records[0]; first.Status != 503 {
			t.Errorf("first request after od-a went bad: %+v, want its 503", first)
		}
		for _, r := range res.Records[1:] {
			if r.Status != 200 || r.Pod != odB.Name {
				t.Fatalf("after the ejection: %+v, want every request answered by %s (zone-b)", r, odB.Name)
			}
		}
		if ejected < 1 {
			t.Errorf("ejections_enforced_total = %d, want ≥ 1", ejected)
		}
	})

	t.Run("distribute 80/20 from zone-a", func(t *testing.T) {
		const n = 1000
		res, err := client.Load(ctx, rig.LoadSpec{URL: dist.URL("/"), N: n, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		pods := map[string]int{}
		for _, r := range res.Records {
			if r.Status == 200 {
				pods[r.Pod]++
			}
		}
		share := float64(pods[distA.Name]) / n
		t.Logf("dist: %s; %s %d, %s %d: zone-a share %.3f", res.Summary(), distA.Name, pods[distA.Name], distB.Name, pods[distB.Name], share)
		if pods[distA.Name]+pods[distB.Name] != n {
			t.Fatalf("%v answered of %d (errors %v)", pods, n, res.Errors(3))
		}
		// σ = √(0.8·0.2/1000) = 0.0126: 4σ is 0.051.
		if share < 0.749 || share > 0.851 {
			t.Errorf("zone-a share %.3f, want 0.80 ± 0.051 (4σ)", share)
		}
	})

	t.Run("no config was rejected", func(t *testing.T) {
		for _, w := range []*rig.Workload{odA, odB, distA, distB, client} {
			rejects, err := envoyRejects(ctx, w.Envoy)
			if err != nil {
				t.Fatal(err)
			}
			if len(rejects) > 0 {
				t.Errorf("%s: %v", w.Name, rejects)
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
			t.Errorf("mizzen_config_errors_total = %v", v)
		}
	})
}

// waitForHosts waits until Envoy's /clusters shows each "<cluster>::<host>::<field>"
// with the value given.
func waitForHosts(t *testing.T, ctx context.Context, e *rig.Envoy, want map[string]string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var last string
	err := e.WaitFor(wctx, func(ctx context.Context, e *rig.Envoy) error {
		b, err := e.Admin(ctx, "/clusters")
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			have[line] = true
		}
		for k, v := range want {
			if !have[k+"::"+v] {
				last = string(b)
				return fmt.Errorf("/clusters lacks %s::%s", k, v)
			}
		}
		return nil
	})
	if err != nil {
		var rel []string
		for _, l := range strings.Split(last, "\n") {
			if strings.Contains(l, "::priority::") || strings.Contains(l, "::zone::") || strings.Contains(l, "::weight::") {
				rel = append(rel, l)
			}
		}
		t.Fatalf("%v\n%s", err, strings.Join(rel, "\n"))
	}
}
