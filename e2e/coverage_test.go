package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestUnimplementedKindsReported: objects of kinds mizzen does not implement,
// applied to the real apiserver, are each named as not applied — in mizzen's
// log, mizzen_config_errors_total, /debug/push_status and `mizzen analyze
// --kubeconfig` (MZ0001) — instead of being ignored without a word. Gateway
// API's HTTPRoute CRD is installed from sigs.k8s.io/gateway-api (the version
// Istio pins); the other Gateway API CRDs are not, and watching kinds whose
// CRD is missing must not keep mizzen from becoming ready. Workloads for the
// analyzer come from Deployments too: MZ0010 before any Pod runs.
func TestUnimplementedKindsReported(t *testing.T) {
	api := rig.StartAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	crd, err := os.ReadFile(filepath.Join(rig.GatewayAPIModuleDir(t), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	api.Apply(t, string(crd))
	if err := api.WaitForCRDs(ctx, "httproutes.gateway.networking.k8s.io"); err != nil {
		t.Fatal(err)
	}

	m := rig.StartMizzen(t, "--kubeconfig", api.Kubeconfig) // returns once /ready: no missing CRD holds it up
	api.Apply(t, `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND}
    patch: {operation: INSERT_BEFORE, value: {name: envoy.lua}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: default}
spec:
  accessLogging: [{providers: [{name: envoy}]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: default}
spec: {address: 10.0.0.9, labels: {app: legacy}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`)
	// A Deployment no Pod runs for yet (no controller-manager here), with an
	// ALLOW-by-principals policy and PERMISSIVE mTLS: analyze finds MZ0010
	// from its pod template.
	api.Apply(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: ratings-v1, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  template:
    metadata: {labels: {app: ratings}}
    spec:
      containers: [{name: ratings, image: ratings, ports: [{containerPort: 9080}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/reviews"]}}]
`)
	objects := []struct{ kind, name string }{{"EnvoyFilter", "lua"}, {"Telemetry", "mesh-default"}, {"WorkloadEntry", "vm-1"}, {"HTTPRoute", "web"}}

	start := time.Now()
	if err := rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		log := m.Log()
		for _, o := range objects {
			if !logHas(log, "config object skipped", "kind="+o.kind, "name="+o.name, "code=UnsupportedKind") {
				return fmt.Errorf("mizzen's log does not name %s default/%s as not applied", o.kind, o.name)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, m.Log())
	}
	t.Logf("all four named in the log %v after applying", time.Since(start).Round(time.Millisecond))

	ms, err := m.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objects {
		if got := ms[`mizzen_config_errors_total{code="UnsupportedKind",kind="`+o.kind+`"}`]; got < 1 {
			t.Errorf("mizzen_config_errors_total{kind=%q,code=UnsupportedKind} = %v, want ≥ 1", o.kind, got)
		}
	}

	b, err := m.Get(ctx, "/debug/push_status")
	if err != nil {
		t.Fatal(err)
	}
	var ps struct {
		List []struct{ Code, Kind, Namespace, Name, Message string } `json:"config_error_list"`
	}
	if err := json.Unmarshal(b, &ps); err != nil {
		t.Fatal(err)
	}
	for _, o := range objects {
		found := false
		for _, e := range ps.List {
			found = found || (e.Kind == o.kind && e.Name == o.name && e.Code == "UnsupportedKind" && strings.Contains(e.Message, "not applied"))
		}
		if !found {
			t.Errorf("/debug/push_status does not list %s default/%s as not applied:\n%s", o.kind, o.name, b)
		}
	}

	out, err := exec.CommandContext(ctx, rig.MizzenBinary(t), "analyze", "--kubeconfig", api.Kubeconfig).CombinedOutput()
	t.Logf("mizzen analyze --kubeconfig:\n%s", out)
	if err == nil {
		t.Errorf("analyze exited 0 with objects it cannot apply")
	}
	for _, o := range objects {
		if !strings.Contains(string(out), "[MZ0001 UnsupportedKind] ("+o.kind+" default/"+o.name+" kind) mizzen does not implement "+o.kind) {
			t.Errorf("analyze does not report %s default/%s as MZ0001", o.kind, o.name)
		}
	}
	if !strings.Contains(string(out), "[MZ0010 PrincipalsWithoutMTLS] (AuthorizationPolicy default/ratings-viewer") {
		t.Errorf("analyze does not report MZ0010 for the Deployment's workload")
	}
}

// logHas reports whether one line of the log has all the parts.
func logHas(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}
