package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kubernetes mode against a real kube-apiserver (built from the Go module proxy)
// with real Envoys: the acceptance of the Kubernetes-mode issue. One world, the
// steps in order, as an operator would do them.
func TestKubeBookinfo(t *testing.T) {
	api := rig.StartAPIServer(t)
	b := rig.BookinfoWith(t, rig.BookinfoOptions{Kube: api, ReadyTimeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// A sidecar Envoy too (no capture needed: its config is what is checked).
	sidecarID := "sidecar~127.0.0.31~productpage-v1-0.default~default.svc.cluster.local"
	sidecar := rig.StartEnvoy(t, rig.EnvoyOptions{NodeID: sidecarID, XDSAddr: b.Mizzen.XDSAddr, Metadata: map[string]any{
		"NAMESPACE": "default", "LABELS": map[string]any{"app": "productpage", "version": "v1"}, "INSTANCE_IPS": "127.0.0.31"}})

	t.Run("gateway serves bookinfo from the API", func(t *testing.T) {
		for path, want := range map[string]int{"/productpage": 200, "/static/x": 200, "/": 404} {
			r, err := b.Get(ctx, "", path, nil)
			if err != nil || r.Status != want {
				t.Errorf("GET %s: %v %+v, want %d", path, err, r, want)
			}
		}
	})

	t.Run("weight change through the API applies within 1s with 0 failures", func(t *testing.T) {
		api.Apply(t, reviewsVS("reviews-split", allTo("v1")))
		waitForVersion(t, ctx, b, "v1")
		var failures, total atomic.Int64
		var firstV3 atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r, err := b.Get(ctx, reviewsHost, "/", nil)
					total.Add(1)
					if err != nil || r.Status != 200 {
						failures.Add(1)
						continue
					}
					if r.Version == "v3" {
						firstV3.CompareAndSwap(0, int64(time.Since(start)))
					}
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		applied := time.Since(start)
		api.Apply(t, reviewsVS("reviews-split", allTo("v3")))
		deadline := time.Now().Add(5 * time.Second)
		for firstV3.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if firstV3.Load() == 0 {
			t.Fatalf("no v3 answer within 5s of the API update (%d requests)", total.Load())
		}
		took := time.Duration(firstV3.Load()) - applied
		t.Logf("%d requests, first v3 answer %s after the API update", total.Load(), took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("the new split took %s, want ≤ 1s", took)
		}
		if failures.Load() != 0 {
			t.Errorf("%d of %d requests failed during the change", failures.Load(), total.Load())
		}
	})

	t.Run("deleting a VirtualService restores the default route", func(t *testing.T) {
		meshVS := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-mesh, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
`
		api.Apply(t, meshVS)
		waitForRoute(t, ctx, sidecar, "9080", "outbound|9080|v2|reviews.default.svc.cluster.local", true)
		api.Delete(t, meshVS)
		waitForRoute(t, ctx, sidecar, "9080", "outbound|9080|v2|reviews.default.svc.cluster.local", false)
		waitForRoute(t, ctx, sidecar, "9080", "outbound|9080||reviews.default.svc.cluster.local", true)
	})

	t.Run("scaling endpoints pushes EDS only", func(t *testing.T) {
		before := pushes(t, ctx, b.Mizzen)
		extra := `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-extra
  namespace: default
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
ports: [{name: http, port: 9080, protocol: TCP}]
endpoints:
- addresses: [198.18.1.7]
  conditions: {ready: true}
`
		api.Apply(t, extra)
		waitForEndpoint(t, ctx, b.Gateway, "outbound|9080||reviews.default.svc.cluster.local", "198.18.1.7", true)
		api.Delete(t, extra)
		waitForEndpoint(t, ctx, b.Gateway, "outbound|9080||reviews.default.svc.cluster.local", "198.18.1.7", false)
		after := pushes(t, ctx, b.Mizzen)
		for _, typ := range []string{"cds", "lds", "rds"} {
			if after[typ] != before[typ] {
				t.Errorf("%s pushes went %v → %v on an endpoint-only change", typ, before[typ], after[typ])
			}
		}
		if after["eds"] <= before["eds"] {
			t.Errorf("eds pushes did not rise: %v → %v", before["eds"], after["eds"])
		}
	})

	t.Run("deleting a Service removes its clusters", func(t *testing.T) {
		api.Delete(t, `apiVersion: v1
kind: Service
metadata: {name: details, namespace: default}
`)
		if err := b.Gateway.WaitFor(ctx, func(ctx context.Context, e *rig.Envoy) error {
			names, err := e.ClusterNames(ctx)
			if err != nil {
				return err
			}
			for _, n := range names {
				if strings.Contains(n, "details.default") {
					return fmt.Errorf("cluster %s still present", n)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a VirtualService with a bad regex is skipped alone, named in log and metric", func(t *testing.T) {
		api.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad-regex, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {regex: "/(unclosed"}}]
    route: [{destination: {host: ratings}}]
`)
		api.Apply(t, reviewsVS("reviews-split", allTo("v1")))
		waitForVersion(t, ctx, b, "v1") // the good change still flows
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := rig.Eventually(wctx, 50*time.Millisecond, func(ctx context.Context) error {
			m, err := b.Mizzen.Metrics(ctx)
			if err != nil {
				return err
			}
			if m[`mizzen_config_errors_total{code="InvalidRegex",kind="VirtualService"}`] < 1 {
				return fmt.Errorf("no InvalidRegex error counted")
			}
			if !strings.Contains(b.Mizzen.Log(), "bad-regex") || !strings.Contains(b.Mizzen.Log(), "spec.http[0].match[0].uri.regex") {
				return fmt.Errorf("log does not name the object and field")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("apiserver restart: mizzen re-syncs and Envoy converges", func(t *testing.T) {
		before, err := b.Gateway.ClusterNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		api.Restart(t)
		// A change made after the restart must arrive through the new watch.
		api.Apply(t, reviewsVS("reviews-split", allTo("v2")))
		waitForVersion(t, ctx, b, "v2")
		r, err := b.Get(ctx, "", "/productpage", nil)
		if err != nil || r.Status != 200 {
			t.Errorf("GET /productpage after restart: %v %+v", err, r)
		}
		after, err := b.Gateway.ClusterNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(before, ",") != strings.Join(after, ",") {
			t.Errorf("clusters differ after the restart:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("no config was rejected", func(t *testing.T) {
		for name, env := range map[string]*rig.Envoy{"gateway": b.Gateway, "sidecar": sidecar} {
			stats, err := env.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range stats {
				if strings.HasSuffix(k, ".update_rejected") && v != 0 {
					t.Errorf("%s: %s = %d", name, k, v)
				}
			}
		}
		m, err := b.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := m.Sum("pilot_total_xds_rejects"); v != 0 {
			t.Errorf("pilot_total_xds_rejects = %v", v)
		}
	})
}

func waitForVersion(t *testing.T, ctx context.Context, b *rig.BookinfoEnv, version string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rig.Eventually(wctx, 20*time.Millisecond, func(ctx context.Context) error {
		r, err := b.Get(ctx, reviewsHost, "/", nil)
		if err != nil {
			return err
		}
		if r.Version != version {
			return fmt.Errorf("answered by %q (status %d)", r.Version, r.Status)
		}
		return nil
	}); err != nil {
		t.Fatalf("reviews never answered from %s: %v", version, err)
	}
}

// waitForRoute waits until route config name holds (or no longer holds) a route to cluster.
func waitForRoute(t *testing.T, ctx context.Context, e *rig.Envoy, name, cluster string, present bool) {
	t.Helper()
	waitForRouteTable(t, ctx, e, name, func(rc map[string]any) error {
		js, err := json.Marshal(rc)
		if err != nil {
			return err
		}
		if has := strings.Contains(string(js), `"`+cluster+`"`); has != present {
			return fmt.Errorf("route config %s: cluster %s present=%v", name, cluster, has)
		}
		return nil
	})
}

func waitForEndpoint(t *testing.T, ctx context.Context, e *rig.Envoy, cluster, addr string, present bool) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.WaitFor(wctx, func(ctx context.Context, e *rig.Envoy) error {
		body, err := e.Admin(ctx, "/clusters")
		if err != nil {
			return err
		}
		has := strings.Contains(string(body), cluster+"::"+addr+":")
		if has != present {
			return fmt.Errorf("%s has %s: %v", cluster, addr, has)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func pushes(t *testing.T, ctx context.Context, mz *rig.Mizzen) map[string]float64 {
	t.Helper()
	m, err := mz.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, typ := range []string{"cds", "eds", "lds", "rds"} {
		out[typ] = m[fmt.Sprintf(`pilot_xds_pushes{type="%s"}`, typ)]
	}
	return out
}

// TestKubeRootCertPublished: in Kubernetes mode mizzen keeps its CA in
// istio-ca-secret and publishes the root to every namespace as istio-ca-root-cert.
func TestKubeRootCertPublished(t *testing.T) {
	api := rig.StartAPIServer(t)
	api.Apply(t, `apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
`)
	rig.StartMizzen(t, "--kubeconfig", api.Kubeconfig)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	secret, err := api.Clientset().CoreV1().Secrets("istio-system").Get(ctx, "istio-ca-secret", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("istio-ca-secret: %v", err)
	}
	root := secret.Data["ca-cert.pem"]
	for _, ns := range []string{"default", "shop", "istio-system"} {
		if err := rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
			cm, err := api.Clientset().CoreV1().ConfigMaps(ns).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cm.Data["root-cert.pem"] != string(root) {
				return fmt.Errorf("root-cert.pem differs from the CA in istio-ca-secret")
			}
			return nil
		}); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}
}
