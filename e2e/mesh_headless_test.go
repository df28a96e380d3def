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

// Issue 15 point 2 through real sidecars: a headless, StatefulSet-style
// Service (clusterIP None) with 3 pods, under STRICT mTLS. There is no DNS in
// the rig, so a client "resolving" db-1.db.default.svc.cluster.local dials
// db-1's address with that Host, as a StatefulSet client does.
//
//	db-0..2   198.18.9.1-3   HTTP 8080, TCP echo 9000 (server first)   Service db (headless: http 8080, tcp-echo 9000)
//	client    198.18.9.10    sidecar, no app
//	outsider  198.18.9.20    no sidecar
func TestMeshHeadless(t *testing.T) {
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	m.API.Apply(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
`)
	db := m.AddService(t, rig.ServiceSpec{Name: "db", Headless: true, Selector: map[string]string{"app": "db"},
		Ports: []rig.ServicePort{{Name: "http", Port: 8080}, {Name: "tcp-echo", Port: 9000}}})
	var pods []*rig.Workload
	for i := range 3 {
		pods = append(pods, m.AddWorkload(t, rig.WorkloadSpec{Name: fmt.Sprintf("db-%d", i), IP: fmt.Sprintf("198.18.9.%d", i+1),
			Labels: map[string]string{"app": "db"}, ServiceAccount: "db", Sidecar: true,
			App: rig.AppSpec{Ports: []int{8080}, TCPPorts: []int{9000}}}))
	}
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "client", IP: "198.18.9.10", Labels: map[string]string{"app": "client"}, ServiceAccount: "client", Sidecar: true})
	outsider := m.AddWorkload(t, rig.WorkloadSpec{Name: "outsider", IP: "198.18.9.20", Labels: map[string]string{"app": "outsider"}})
	t.Logf("mesh up in %s", time.Since(began).Round(time.Millisecond))

	for _, p := range pods {
		waitForListener(t, ctx, client.Envoy, p.IP+"_9000", "outbound|9000||"+db.Hostname)
	}
	m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db]
  http:
  - name: db-headers
    headers: {request: {set: {x-routed-by: db-vs}}}
    route: [{destination: {host: db}}]
`)
	waitForRouteNamed(t, ctx, client.Envoy, "8080", "db-headers", true)
	syncedAll(t, ctx, client)

	t.Run("db-N.db reaches pod db-N over mTLS, with the VirtualService applied", func(t *testing.T) {
		for i, p := range pods {
			host := fmt.Sprintf("db-%d.db.default.svc.cluster.local", i)
			res, err := client.Load(ctx, rig.LoadSpec{URL: fmt.Sprintf("http://%s:8080/", p.IP), N: 20, Concurrency: 2,
				Headers: map[string]string{"Host": host}, IncludeBody: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s (%s): %s", host, p.IP, res.Summary())
			if len(res.Records) != 20 || res.StatusCounts()[200] != 20 {
				t.Fatalf("%s: %s (errors %v), want 20 × 200", host, res.Summary(), res.Errors(3))
			}
			for _, rec := range res.Records {
				var body echo.Response
				if err := json.Unmarshal([]byte(rec.Body), &body); err != nil {
					t.Fatal(err)
				}
				if rec.Pod != p.Name || body.Headers["x-routed-by"] != "db-vs" ||
					!strings.Contains(body.Headers["x-forwarded-client-cert"], "URI=spiffe://cluster.local/ns/default/sa/client") {
					t.Fatalf("%s: answered by %s, x-routed-by %q, XFCC %q; want %s, db-vs and the client's SPIFFE ID (mTLS)",
						host, rec.Pod, body.Headers["x-routed-by"], body.Headers["x-forwarded-client-cert"], p.Name)
				}
			}
		}
	})

	t.Run("TCP to each pod through its own listener, over mTLS", func(t *testing.T) {
		before := envoyStat(t, ctx, client.Envoy, "cluster.outbound|9000||"+db.Hostname+".ssl.handshake")
		for _, p := range pods {
			res, err := client.Load(ctx, rig.LoadSpec{URL: fmt.Sprintf("tcp://%s:9000", p.IP), N: 3})
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCounts()[200] != 3 || res.Records[0].Pod != p.Name {
				t.Fatalf("tcp to %s: %s (errors %v), want 3 greetings from %s", p.IP, res.Summary(), res.Errors(3), p.Name)
			}
			if v := envoyStat(t, ctx, p.Envoy, "tcp.inbound|9000||.downstream_cx_total"); v < 3 {
				t.Errorf("%s's sidecar proxied %d inbound TCP connections, want ≥ 3", p.Name, v)
			}
		}
		if hs := envoyStat(t, ctx, client.Envoy, "cluster.outbound|9000||"+db.Hostname+".ssl.handshake") - before; hs < 9 {
			t.Errorf("%d TLS handshakes on outbound|9000||%s, want ≥ 9 (one per connection)", hs, db.Hostname)
		}
	})

	t.Run("STRICT: a pod without a sidecar is refused", func(t *testing.T) {
		res, err := outsider.Load(ctx, rig.LoadSpec{URL: fmt.Sprintf("http://%s:8080/", pods[1].IP), N: 3, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCounts()[200] != 0 {
			t.Fatalf("plaintext to a STRICT pod: %s, want no answer", res.Summary())
		}
	})

	t.Run("no config was rejected", func(t *testing.T) {
		for _, w := range append(pods, client) {
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
	})
}
