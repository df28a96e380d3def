package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
	"github.com/mizzenmesh/mizzen/pkg/explain"
)

// TestExplain: `mizzen explain` on the canary and RBAC scenarios names the
// route, VirtualService, weights and policy that Envoy's behaviour shows.
//
//	web-v1  198.18.11.1, web-v2 198.18.11.2  (Service web :80 → 8080)
//	client  198.18.11.10
func TestExplain(t *testing.T) {
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sel := map[string]string{"app": "web"}
	web := m.AddService(t, rig.ServiceSpec{Name: "web", Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}, Selector: sel})
	v1 := m.AddWorkload(t, rig.WorkloadSpec{Name: "web-v1", IP: "198.18.11.1", Labels: map[string]string{"app": "web", "version": "v1"},
		App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
	v2 := m.AddWorkload(t, rig.WorkloadSpec{Name: "web-v2", IP: "198.18.11.2", Labels: map[string]string{"app": "web", "version": "v2"},
		App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "client", IP: "198.18.11.10", Labels: map[string]string{"app": "client"}, Sidecar: true})
	m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-canary, namespace: default}
spec:
  hosts: [web]
  http:
  - name: testers
    match: [{headers: {x-tester: {exact: "yes"}}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: canary
    route:
    - {destination: {host: web, subset: v1}, weight: 90}
    - {destination: {host: web, subset: v2}, weight: 10}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
`)
	waitForRouteNamed(t, ctx, client.Envoy, "80", "canary", true)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80|v1|"+web.Hostname, v1.IP+":8080", true)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80|v2|"+web.Hostname, v2.IP+":8080", true)
	for _, w := range []*rig.Workload{client, v1, v2} {
		syncedAll(t, ctx, w)
	}

	run := func(t *testing.T, url string, headers ...string) *explain.Trace {
		t.Helper()
		args := []string{"explain", "--from", "client.default", "--monitoring-addr", m.Mizzen.MonitoringAddr, "-o", "json", url}
		for _, h := range headers {
			args = append(args, "-H", h)
		}
		out, err := exec.CommandContext(ctx, rig.MizzenBinary(t), args...).Output()
		if err != nil {
			t.Fatalf("mizzen %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		var tr explain.Trace
		if err := json.Unmarshal(out, &tr); err != nil {
			t.Fatalf("explain output: %v\n%s", err, out)
		}
		text, _ := exec.CommandContext(ctx, rig.MizzenBinary(t), append(args[:len(args)-3], url)...).CombinedOutput()
		t.Logf("mizzen explain %s:\n%s", url, text)
		return &tr
	}

	t.Run("canary: the weighted route and the split Envoy applies", func(t *testing.T) {
		tr := run(t, "http://web/")
		if tr.Route != "canary" || tr.VirtualService != "default/web-canary" {
			t.Fatalf("route %q of %q, want canary of default/web-canary", tr.Route, tr.VirtualService)
		}
		weights := map[string]uint32{}
		for _, d := range tr.Destinations {
			weights[d.Cluster] = d.Weight
		}
		if weights["outbound|80|v1|"+web.Hostname] != 90 || weights["outbound|80|v2|"+web.Hostname] != 10 {
			t.Fatalf("weights %v, want v1 90, v2 10", weights)
		}
		res, err := client.Load(ctx, rig.LoadSpec{URL: web.URL("/"), N: 400, Concurrency: 4})
		if err != nil || res.Non2xx() != 0 {
			t.Fatalf("load: %v, statuses %v", err, res.StatusCounts())
		}
		if share := res.Share("v2"); share < 0.04 || share > 0.17 {
			t.Errorf("Envoy sent %.3f to v2; explain says 10%%", share)
		}
		tr = run(t, "http://web/", "x-tester: yes")
		if tr.Route != "testers" || len(tr.Destinations) != 1 || !strings.Contains(tr.Destinations[0].Cluster, "|v2|") {
			t.Fatalf("with x-tester: route %q → %+v, want testers → v2", tr.Route, tr.Destinations)
		}
		res, err = client.Load(ctx, rig.LoadSpec{URL: web.URL("/"), N: 20, Headers: map[string]string{"x-tester": "yes"}})
		if err != nil || res.Share("v2") != 1 {
			t.Fatalf("Envoy with x-tester: %v, v2 share %.2f, want 1", err, res.Share("v2"))
		}
	})

	t.Run("RBAC: the policy that denies, and the request it lets through", func(t *testing.T) {
		tr := run(t, "http://web/admin/users")
		if tr.Decision != "DENIED" || tr.Policy != "ns[default]-policy[deny-admin]-rule[0]" {
			t.Fatalf("explain: %s by %q, want DENIED by ns[default]-policy[deny-admin]-rule[0]", tr.Decision, tr.Policy)
		}
		status, _, body, err := client.HTTP(ctx, "GET", web.URL("/admin/users"), nil)
		if err != nil || status != 403 || strings.TrimSpace(string(body)) != "RBAC: access denied" {
			t.Fatalf("Envoy: %d %q %v, want 403 RBAC: access denied", status, body, err)
		}
		tr = run(t, "http://web/hello")
		if tr.Decision != "ALLOWED" {
			t.Fatalf("explain /hello: %s by %q, want ALLOWED", tr.Decision, tr.Policy)
		}
		if status, _, _, err := client.HTTP(ctx, "GET", web.URL("/hello"), nil); err != nil || status != 200 {
			t.Fatalf("Envoy /hello: %d %v, want 200", status, err)
		}
	})

	t.Run("proxy-status: all SYNCED, a change shows up, then SYNCED again", func(t *testing.T) {
		status := func() (string, error) {
			out, err := exec.CommandContext(ctx, rig.MizzenBinary(t), "proxy-status", "--monitoring-addr", m.Mizzen.MonitoringAddr).CombinedOutput()
			return string(out), err
		}
		// rows: pod name -> fields (NAME TYPE CDS LDS EDS RDS SDS XDS LAST CHANGE… NACK)
		rows := func(out string) map[string][]string {
			r := map[string][]string{}
			for _, line := range strings.Split(out, "\n")[1:] {
				if f := strings.Fields(line); len(f) >= 7 {
					r[f[0]] = f
				}
			}
			return r
		}
		allSynced := func(out string) error {
			r := rows(out)
			if len(r) != 3 {
				return fmt.Errorf("%d proxies in\n%s", len(r), out)
			}
			for name, f := range r {
				for _, st := range f[2:7] {
					if st != "SYNCED" {
						return fmt.Errorf("%s: %v", name, f)
					}
				}
			}
			return nil
		}
		var before string
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(context.Context) error {
			out, err := status()
			if err == nil {
				err = allSynced(out)
			}
			before = out
			return err
		}); err != nil {
			t.Fatalf("not all SYNCED: %v", err)
		}
		t.Logf("before the change:\n%s", before)
		prev := rows(before)["client.default"]
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-canary, namespace: default}
spec:
  hosts: [web]
  http:
  - name: canary
    route:
    - {destination: {host: web, subset: v1}, weight: 50}
    - {destination: {host: web, subset: v2}, weight: 50}
`)
		var after string
		if err := rig.Eventually(ctx, 100*time.Millisecond, func(context.Context) error {
			out, err := status()
			if err != nil {
				return err
			}
			after = out
			cur := rows(out)["client.default"]
			// NAME TYPE CDS LDS EDS RDS SDS XDS LAST-CHANGE(#id STATE latency) NACK
			if len(cur) < 10 || (len(prev) > 8 && cur[8] == prev[8]) {
				return fmt.Errorf("client's last change still %v", cur)
			}
			if cur[9] != "ACKED" {
				return fmt.Errorf("client's change %v not ACKED yet", cur)
			}
			return allSynced(out)
		}); err != nil {
			t.Fatalf("after the change: %v\n%s", err, after)
		}
		t.Logf("after the change:\n%s", after)
	})
}
