package translate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/file"
	"github.com/mizzenmesh/mizzen/translate"
)

// buildSnapshot loads Kubernetes/Istio YAML the way the golden harness does.
func buildSnapshot(t *testing.T, objects string) *model.Snapshot {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "objects.yaml"), []byte(objects), 0o644); err != nil {
		t.Fatal(err)
	}
	in, errs := file.New(dir, file.Options{}).Load()
	for _, e := range errs {
		t.Fatalf("input does not parse: %v", e)
	}
	return model.Build(&in, 1)
}

const hashMesh = `
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  clusterIP: 10.96.1.10
  ports: [{name: http, port: 8080}, {name: http-admin, port: 8081}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie:
          name: session
          path: /
          ttl: 0s
          attributes: [{name: SameSite, value: Strict}]
    portLevelSettings:
    - port: {number: 8081}
      loadBalancer:
        consistentHash: {useSourceIp: true}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpQueryParameterName: user}
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: shop}
spec:
  clusterIP: 10.96.1.11
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: plain-for-tenant, namespace: tenant}
spec:
  host: plain.shop.svc.cluster.local
  exportTo: ["."]
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-tenant}
`

func TestHashPolicies(t *testing.T) {
	snap := buildSnapshot(t, hashMesh)
	const (
		cookie   = `{"cookie":{"name":"session","ttl":"0s","path":"/","attributes":[{"name":"SameSite","value":"Strict"}]}}`
		sourceIP = `{"connectionProperties":{"sourceIp":true}}`
		header   = `{"header":{"headerName":"x-user"}}`
		query    = `{"queryParameter":{"name":"user"}}`
		tenant   = `{"header":{"headerName":"x-tenant"}}`
	)
	for _, tc := range []struct {
		name     string
		ns       string
		clusters []string
		want     []string
	}{
		{"host level cookie", "shop", []string{"outbound|8080||cart.shop.svc.cluster.local"}, []string{cookie}},
		{"port level replaces host level", "shop", []string{"outbound|8081||cart.shop.svc.cluster.local"}, []string{sourceIP}},
		{"subset overrides host", "shop", []string{"outbound|8080|v1|cart.shop.svc.cluster.local"}, []string{header}},
		{"subset overrides port level too", "shop", []string{"outbound|8081|v1|cart.shop.svc.cluster.local"}, []string{header}},
		{"subset without hash", "shop", []string{"outbound|8080|v2|cart.shop.svc.cluster.local"}, nil},
		{"query parameter", "other", []string{"outbound|8080|v3|cart.shop.svc.cluster.local"}, []string{query}},
		{"weighted: one per hashed destination, in order", "shop", []string{
			"outbound|8080|v1|cart.shop.svc.cluster.local",
			"outbound|8080|v2|cart.shop.svc.cluster.local",
			"outbound|8080|v3|cart.shop.svc.cluster.local",
		}, []string{header, query}},
		{"undefined subset", "shop", []string{"outbound|8080|v9|cart.shop.svc.cluster.local"}, nil},
		{"no DestinationRule", "shop", []string{"outbound|80||plain.shop.svc.cluster.local"}, nil},
		{"DestinationRule private to the proxy's namespace", "tenant", []string{"outbound|80||plain.shop.svc.cluster.local"}, []string{tenant}},
		{"not an outbound cluster", "shop", []string{translate.PassthroughCluster, "outbound|x||cart.shop.svc.cluster.local"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := translate.HashPolicies(snap, tc.ns, tc.clusters...)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d hash policies %v, want %d", len(got), got, len(tc.want))
			}
			for i, hp := range got {
				if err := hp.ValidateAll(); err != nil {
					t.Errorf("hash policy %d would be NACKed: %v", i, err)
				}
				if js := compactJSON(t, hp); js != tc.want[i] {
					t.Errorf("hash policy %d = %s, want %s", i, js, tc.want[i])
				}
			}
		})
	}
}

func compactJSON(t *testing.T, hp *routev3.RouteAction_HashPolicy) string {
	t.Helper()
	b, err := protojson.Marshal(hp)
	if err != nil {
		t.Fatal(err)
	}
	// protojson's output spacing is deliberately unstable; remove it.
	return strings.NewReplacer(" ", "", "\n", "").Replace(string(b))
}
