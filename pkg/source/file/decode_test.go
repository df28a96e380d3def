package file

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, dir string) (model.Inputs, []*Error) {
	t.Helper()
	return New(dir, Options{Logger: quietLogger()}).Load()
}

func mustLoad(t *testing.T, dir string) model.Inputs {
	t.Helper()
	in, errs := load(t, dir)
	for _, e := range errs {
		t.Errorf("unexpected error: %v", e)
	}
	return in
}

const virtualServiceSpec = `
spec:
  hosts: [reviews]
  http:
  - match:
    - uri:
        prefix: /api
    timeout: 1s
    retries:
      attempts: 3
      perTryTimeout: 500ms
    route:
    - destination: {host: reviews, subset: v1}
      weight: 75
    - destination: {host: reviews, subset: v2}
      weight: 25
`

func TestVirtualServiceEveryVersion(t *testing.T) {
	for _, version := range []string{"v1alpha3", "v1beta1", "v1"} {
		t.Run(version, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "vs.yaml", "apiVersion: networking.istio.io/"+version+`
kind: VirtualService
metadata:
  name: reviews
`+virtualServiceSpec)
			in := mustLoad(t, dir)
			if len(in.VirtualServices) != 1 {
				t.Fatalf("got %d VirtualServices, want 1", len(in.VirtualServices))
			}
			vs := in.VirtualServices[0]
			if vs.APIVersion != "networking.istio.io/v1" || vs.Kind != "VirtualService" {
				t.Errorf("TypeMeta = %s %s, want the v1 type's", vs.APIVersion, vs.Kind)
			}
			if vs.Namespace != "default" || vs.Name != "reviews" {
				t.Errorf("got %s/%s, want default/reviews", vs.Namespace, vs.Name)
			}
			h := vs.Spec.GetHttp()[0]
			if got := h.GetMatch()[0].GetUri().GetPrefix(); got != "/api" {
				t.Errorf("match.uri.prefix = %q", got)
			}
			if got := h.GetTimeout().AsDuration(); got != time.Second {
				t.Errorf("timeout = %v, want 1s", got)
			}
			if got := h.GetRetries().GetPerTryTimeout().AsDuration(); got != 500*time.Millisecond {
				t.Errorf("perTryTimeout = %v, want 500ms", got)
			}
			if w := []int32{h.GetRoute()[0].GetWeight(), h.GetRoute()[1].GetWeight()}; w[0] != 75 || w[1] != 25 {
				t.Errorf("weights = %v, want [75 25]", w)
			}
			if got := h.GetRoute()[1].GetDestination().GetSubset(); got != "v2" {
				t.Errorf("subset = %q", got)
			}
		})
	}
}

// Istio's jsonpb accepts any Go duration, not only protojson's seconds form;
// configs in the wild rely on that.
func TestDurationsInGoSyntax(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "dr.yaml", `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: r, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {connectTimeout: 1m30s}
      http: {idleTimeout: "90.5s"}
    outlierDetection:
      baseEjectionTime: 2m
      consecutive5xxErrors: 5
`)
	in := mustLoad(t, dir)
	tp := in.DestinationRules[0].Spec.GetTrafficPolicy()
	if got := tp.GetConnectionPool().GetTcp().GetConnectTimeout().AsDuration(); got != 90*time.Second {
		t.Errorf("connectTimeout = %v", got)
	}
	if got := tp.GetConnectionPool().GetHttp().GetIdleTimeout().AsDuration(); got != 90500*time.Millisecond {
		t.Errorf("idleTimeout = %v", got)
	}
	if got := tp.GetOutlierDetection().GetBaseEjectionTime().AsDuration(); got != 2*time.Minute {
		t.Errorf("baseEjectionTime = %v", got)
	}
	if got := tp.GetOutlierDetection().GetConsecutive_5XxErrors().GetValue(); got != 5 {
		t.Errorf("consecutive5xxErrors = %v", got)
	}
}

func TestEveryKind(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "core.yaml", `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.0.0.1
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web, version: v1}}
spec:
  serviceAccountName: web
  containers: [{name: app, image: app}]
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: "trustDomain: example.org"
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
data: {x: y}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.1.0.1]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: web-0, namespace: shop}
`)
	writeFile(t, dir, "networking.yaml", `apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cert}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}]
`)
	writeFile(t, dir, "security/policies.yaml", `apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/client"]}}]
    to: [{operation: {methods: [GET], paths: ["/api/*"]}}]
---
apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - issuer: https://issuer.example.com
    jwksUri: https://issuer.example.com/jwks
    forwardOriginalToken: true
`)
	in := mustLoad(t, dir)

	counts := map[string]int{
		"Namespaces": len(in.Namespaces), "Services": len(in.Services), "Pods": len(in.Pods),
		"ServiceAccounts": len(in.ServiceAccounts), "ConfigMaps": len(in.ConfigMaps),
		"EndpointSlices": len(in.EndpointSlices), "Gateways": len(in.Gateways),
		"ServiceEntries": len(in.ServiceEntries), "Sidecars": len(in.Sidecars),
		"DestinationRules": len(in.DestinationRules), "PeerAuthentications": len(in.PeerAuthentications),
		"AuthorizationPolicies": len(in.AuthorizationPolicies), "RequestAuthentications": len(in.RequestAuthentications),
	}
	for kind, n := range counts {
		if n != 1 {
			t.Errorf("%s: got %d, want 1", kind, n)
		}
	}
	if t.Failed() {
		return
	}
	if ns := in.Namespaces[0]; ns.Namespace != "" || ns.Labels["istio-injection"] != "enabled" {
		t.Errorf("Namespace: got namespace %q labels %v", ns.Namespace, ns.Labels)
	}
	if svc := in.Services[0]; svc.Spec.ClusterIP != "10.0.0.1" || svc.Spec.Ports[0].TargetPort.IntValue() != 8080 {
		t.Errorf("Service spec = %+v", svc.Spec)
	}
	if pod := in.Pods[0]; pod.Status.PodIP != "10.1.0.1" || pod.Spec.ServiceAccountName != "web" || pod.Labels["version"] != "v1" {
		t.Errorf("Pod = %+v", pod)
	}
	if cm := in.ConfigMaps[0]; cm.Name != "istio" || cm.Data["mesh"] == "" {
		t.Errorf("ConfigMap = %s/%s %v", cm.Namespace, cm.Name, cm.Data)
	}
	if es := in.EndpointSlices[0]; es.Endpoints[0].TargetRef.Name != "web-0" || !*es.Endpoints[0].Conditions.Ready {
		t.Errorf("EndpointSlice = %+v", es)
	}
	if gw := in.Gateways[0]; gw.Namespace != "default" || gw.Spec.GetServers()[0].GetTls().GetMode() != networkingapi.ServerTLSSettings_SIMPLE {
		t.Errorf("Gateway = %s/%s %v", gw.Namespace, gw.Name, gw.Spec.String())
	}
	if se := in.ServiceEntries[0]; se.Spec.GetResolution() != networkingapi.ServiceEntry_DNS {
		t.Errorf("ServiceEntry = %v", se.Spec.String())
	}
	if sc := in.Sidecars[0]; len(sc.Spec.GetEgress()[0].GetHosts()) != 2 {
		t.Errorf("Sidecar = %v", sc.Spec.String())
	}
	pa := in.PeerAuthentications[0]
	if pa.APIVersion != "security.istio.io/v1" || pa.Spec.GetMtls().GetMode() != securityapi.PeerAuthentication_MutualTLS_STRICT ||
		pa.Spec.GetPortLevelMtls()[8080].GetMode() != securityapi.PeerAuthentication_MutualTLS_PERMISSIVE {
		t.Errorf("PeerAuthentication = %s %v", pa.APIVersion, pa.Spec.String())
	}
	ap := in.AuthorizationPolicies[0]
	if got := ap.Spec.GetRules()[0].GetTo()[0].GetOperation().GetPaths(); len(got) != 1 || got[0] != "/api/*" {
		t.Errorf("AuthorizationPolicy = %v", ap.Spec.String())
	}
	if ra := in.RequestAuthentications[0]; !ra.Spec.GetJwtRules()[0].GetForwardOriginalToken() {
		t.Errorf("RequestAuthentication = %v", ra.Spec.String())
	}
}

func TestListAndJSON(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "list.yaml", `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: a}
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: vs}
  spec: {hosts: [a]}
`)
	writeFile(t, dir, "sa.json", `{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "b", "namespace": "x"}}`)
	writeFile(t, dir, "ignored.txt", `not: config`)
	in := mustLoad(t, dir)
	if len(in.ServiceAccounts) != 2 || len(in.VirtualServices) != 1 {
		t.Fatalf("got %d ServiceAccounts and %d VirtualServices, want 2 and 1", len(in.ServiceAccounts), len(in.VirtualServices))
	}
	// File path then document order: list.yaml before sa.json.
	if in.ServiceAccounts[0].Name != "a" || in.ServiceAccounts[1].Name != "b" {
		t.Errorf("order = %s, %s", in.ServiceAccounts[0].Name, in.ServiceAccounts[1].Name)
	}
}

func TestUnsupportedKindsAreSkipped(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "mixed.yaml", `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec: {whatever: true}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: we}
---
apiVersion: security.istio.io/v1alpha1
kind: PeerAuthentication
metadata: {name: old}
---
# only a comment
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: kept}
`)
	in := mustLoad(t, dir)
	if len(in.ServiceAccounts) != 1 || len(in.PeerAuthentications) != 0 {
		t.Errorf("got %d ServiceAccounts, %d PeerAuthentications", len(in.ServiceAccounts), len(in.PeerAuthentications))
	}
	// An Istio kind mizzen does not implement is kept by name, for the model
	// to report as not applied.
	if len(in.Unimplemented) != 1 || in.Unimplemented[0].Kind != "WorkloadEntry" || in.Unimplemented[0].Name != "we" {
		t.Errorf("unimplemented kinds: got %+v, want the WorkloadEntry", in.Unimplemented)
	}
}

func TestDecodeErrors(t *testing.T) {
	const vsHead = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: bookinfo\n"
	tests := []struct {
		name    string
		content string
		doc     int
		line    int
		kind    string
		obj     string // namespace/name
		want    string // the reason, after "Kind ns/name: "
	}{
		{
			name: "weight of the wrong type",
			content: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: fine}\n---\n" + vsHead +
				"spec:\n  http:\n  - route:\n    - destination: {host: a}\n      weight: heavy\n",
			doc: 2, line: 5, kind: "VirtualService", obj: "default/bookinfo",
			want: `spec.http[0].route[0].weight: expected an integer (int32), got string "heavy"`,
		},
		{
			name:    "misspelt spec field",
			content: vsHead + "spec:\n  http:\n  - route:\n    - destination: {host: a}\n      wieght: 5\n",
			doc:     1, line: 1, kind: "VirtualService", obj: "default/bookinfo",
			want: `spec.http[0].route[0].wieght: unknown field "wieght" (did you mean "weight"?)`,
		},
		{
			name:    "bad duration",
			content: vsHead + "spec:\n  http:\n  - timeout: 1 second\n",
			doc:     1, line: 1, kind: "VirtualService", obj: "default/bookinfo",
			want: `spec.http[0].timeout: invalid duration "1 second"`,
		},
		{
			name:    "duration as a bare number",
			content: vsHead + "spec:\n  http:\n  - timeout: 5\n",
			doc:     1, line: 1, kind: "VirtualService", obj: "default/bookinfo",
			want: `spec.http[0].timeout: expected a duration string such as "1s" or "500ms", got number 5`,
		},
		{
			name:    "bad enum",
			content: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: x}\nspec:\n  mtls: {mode: STRICTER}\n",
			doc:     1, line: 1, kind: "PeerAuthentication", obj: "x/p",
			want: `spec.mtls.mode: invalid value string "STRICTER": must be one of UNSET, DISABLE, PERMISSIVE, STRICT`,
		},
		{
			name:    "two branches of a oneof",
			content: vsHead + "spec:\n  http:\n  - match:\n    - uri: {exact: /a, prefix: /b}\n",
			doc:     1, line: 1, kind: "VirtualService", obj: "default/bookinfo",
			want: `spec.http[0].match[0].uri: only one of "exact" and "prefix" may be set`,
		},
		{
			name:    "unknown field outside spec",
			content: vsHead + "  labels: {a: b}\n  lables: {a: b}\nspec: {}\n",
			doc:     1, line: 1, kind: "VirtualService", obj: "default/bookinfo",
			want: `unknown field "metadata.lables"`,
		},
		{
			name:    "Kubernetes field of the wrong type",
			content: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: eighty}]\n",
			doc:     1, line: 1, kind: "Service", obj: "default/s",
			want: `spec.ports.port: expected int32, got string`,
		},
		{
			name:    "unknown Kubernetes field",
			content: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  clusterIp: 10.0.0.1\n",
			doc:     1, line: 1, kind: "Service", obj: "default/s",
			want: `unknown field "spec.clusterIp"`,
		},
		{
			name:    "bad YAML, line in file terms",
			content: "# leading comment\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\n\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: b\n   namespace: x\n",
			doc:     2, line: 8,
			want: `yaml: line 12: mapping values are not allowed in this context`,
		},
		{
			name:    "duplicate YAML key",
			content: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\nkind: ServiceAccount\n",
			doc:     1, line: 1,
			want: `line 4: key "kind" already set in map`,
		},
		{
			name:    "missing kind",
			content: "apiVersion: v1\nmetadata: {name: a}\n",
			doc:     1, line: 1, obj: "a",
			want: "missing kind",
		},
		{
			name:    "missing name",
			content: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {namespace: x}\nspec: {}\n",
			doc:     1, line: 1, kind: "Gateway",
			want: "missing metadata.name",
		},
		{
			name:    "not an object",
			content: "- a\n- b\n",
			doc:     1, line: 1,
			want: "document is not an object",
		},
		{
			name:    "bad List item",
			content: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: ok}\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: bad}\n  automountServiceAccountToken: maybe\n",
			doc:     1, line: 1, kind: "ServiceAccount", obj: "default/bad",
			want: "items[1]: automountServiceAccountToken: expected bool, got string",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "x.yaml", tc.content)
			in, errs := load(t, dir)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), errs)
			}
			e := errs[0]
			if e.File != path || e.Doc != tc.doc || e.Line != tc.line || e.Kind != tc.kind {
				t.Errorf("got File=%s Doc=%d Line=%d Kind=%q, want %s %d %d %q", e.File, e.Doc, e.Line, e.Kind, path, tc.doc, tc.line, tc.kind)
			}
			prefix := fmt.Sprintf("%s: doc %d (line %d): ", path, tc.doc, tc.line)
			if tc.kind != "" || tc.obj != "" {
				prefix += strings.TrimSpace(tc.kind+" "+tc.obj) + ": "
			}
			if got := e.Error(); !strings.HasPrefix(got, prefix) || !strings.Contains(got, tc.want) {
				t.Errorf("error:\n got  %s\n want %s...%s", got, prefix, tc.want)
			}
			// A failed document takes its whole file with it.
			if n := len(in.ServiceAccounts) + len(in.VirtualServices) + len(in.Services); n != 0 {
				t.Errorf("got %d objects from a file with an error, want none", n)
			}
		})
	}
}

// Istio's generated UnmarshalJSON drops unknown fields without a word; this is
// why specs are decoded with a strict jsonpb here. If this test starts failing,
// upstream became strict and the check in decode.decodeIstio may be simplified.
func TestIstioUnmarshalJSONIsLenient(t *testing.T) {
	var vs networking.VirtualService
	err := json.Unmarshal([]byte(`{"spec": {"hosts": ["a"], "htpp": [{"timeout": "1s"}]}}`), &vs)
	if err != nil {
		t.Fatalf("upstream decoding now fails on unknown fields: %v", err)
	}
	if len(vs.Spec.GetHttp()) != 0 || vs.Spec.GetHosts()[0] != "a" {
		t.Fatalf("unexpected spec %v", vs.Spec.String())
	}
}

func TestDuplicates(t *testing.T) {
	dir := t.TempDir()
	sa := func(ns, owner string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: %s, labels: {owner: %s}}\n", ns, owner)
	}
	a := writeFile(t, dir, "a.yaml", sa("default", "a"))
	// Implicitly in "default" too, and a v1alpha3 VirtualService is the same
	// object as a v1 one.
	b := writeFile(t, dir, "b/b.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, labels: {owner: b}}\n---\n"+
		sa("other", "b")+"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec: {hosts: [x]}\n")
	writeFile(t, dir, "c.yaml", "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: vs, namespace: default}\nspec: {hosts: [web]}\n")

	in, errs := load(t, dir)
	if len(in.ServiceAccounts) != 2 || in.ServiceAccounts[0].Labels["owner"] != "a" || in.ServiceAccounts[1].Namespace != "other" {
		t.Errorf("ServiceAccounts = %v", in.ServiceAccounts)
	}
	if len(in.VirtualServices) != 1 || in.VirtualServices[0].Spec.GetHosts()[0] != "x" {
		t.Errorf("VirtualServices = %v", in.VirtualServices)
	}
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(errs), errs)
	}
	want0 := fmt.Sprintf("%s: doc 1 (line 1): ServiceAccount default/web: duplicate: already defined in %s doc 1 (line 1)", b, a)
	if got := errs[0].Error(); !strings.HasPrefix(got, want0) {
		t.Errorf("error:\n got  %s\n want %s...", got, want0)
	}
	if got := errs[1].Error(); !strings.Contains(got, "c.yaml: doc 1 (line 1): VirtualService default/vs: duplicate: already defined in "+b+" doc 3 (line 9)") {
		t.Errorf("error: %s", got)
	}
}

// Load can be called again; it re-reads what changed and applies the same
// keep-the-last-good-version rule as Run.
func TestBrokenFileKeepsLastGoodVersion(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, Options{Logger: quietLogger()})
	writeFile(t, dir, "a.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a1}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a2}\n")
	writeFile(t, dir, "b.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b1}\n")
	if in, errs := s.Load(); len(in.ServiceAccounts) != 3 || len(errs) != 0 {
		t.Fatalf("initial load: %d ServiceAccounts, errors %v", len(in.ServiceAccounts), errs)
	}

	// A half-saved a.yaml: its first document is fine, the second is not.
	writeFile(t, dir, "a.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a1-renamed}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: \n")
	writeFile(t, dir, "b.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b2}\n")
	in, errs := s.Load()
	if got := names(in); got != "a1 a2 b2" {
		t.Errorf("after broken save: %s, want a1 a2 b2", got)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "a.yaml: doc 2 (line 5)") {
		t.Errorf("errors = %v", errs)
	}
	if got := s.Errors(); len(got) != 1 {
		t.Errorf("Errors() = %v", got)
	}

	// A file that never parsed contributes nothing.
	writeFile(t, dir, "c.yaml", "kind: [\n")
	if in, _ := s.Load(); names(in) != "a1 a2 b2" {
		t.Errorf("with a never-good file: %s", names(in))
	}

	writeFile(t, dir, "a.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a3}\n")
	if err := os.Remove(filepath.Join(dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	in, errs = s.Load()
	if got := names(in); got != "a3 b2" || len(errs) != 0 {
		t.Errorf("after fix: %s, errors %v", got, errs)
	}
}

func names(in model.Inputs) string {
	var n []string
	for _, sa := range in.ServiceAccounts {
		n = append(n, sa.Name)
	}
	return strings.Join(n, " ")
}

func TestSplitDocuments(t *testing.T) {
	docs := splitDocuments([]byte("\ufeff# c\n---\na: 1\n--- # sep\n\n\nb: 2\r\n---\n# only comment\n---\n--- x\nc: 3\n"))
	var got []string
	for _, d := range docs {
		got = append(got, fmt.Sprintf("%d@%d/%d", d.index, d.line, d.firstLine))
	}
	// "--- x" is content, not a separator, as in Kubernetes' YAML reader.
	if want := "1@3/3 2@7/5 3@11/11"; strings.Join(got, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, " "), want)
	}
}
